// Receiver anti-replay window of RFC 4303 §3.4.3, with the extended sequence numbers of
// Appendix A2 (the high 32 bits are never sent; they are inferred from the window).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace mobike::esp {

class ReplayWindow {
 public:
  static constexpr std::uint32_t kDefaultSize = 1024;
  static constexpr std::uint32_t kMinSize = 32;  // RFC 4303 §3.4.3: at least 32
  static constexpr std::uint32_t kMaxSize = 1u << 20;

  // A power of two in [kMinSize, kMaxSize]: the bitmap is indexed by masking.
  static bool valid_size(std::uint32_t size);

  // `size` must be valid_size(); an invalid one is rounded up into range so that a
  // misconfiguration can never leave a window without protection.
  explicit ReplayWindow(std::uint32_t size = kDefaultSize, bool esn = false);
  ReplayWindow(const ReplayWindow& o);
  ReplayWindow& operator=(const ReplayWindow& o);
  ReplayWindow(ReplayWindow&&) noexcept = default;
  ReplayWindow& operator=(ReplayWindow&&) noexcept = default;
  ~ReplayWindow() = default;

  // Before the ICV is checked: the full sequence number the packet claims (the low 32
  // bits as received, the high 32 inferred under ESN), or nullopt for a replayed
  // number, one that fell behind the window, or 0 (never sent, RFC 4303 §3.3.3).
  // Under ESN the inferred high bits are part of the ICV input, so a wrong guess
  // caused by an attacker only ever fails authentication.
  std::optional<std::uint64_t> check(std::uint32_t seq_low) const;

  // Only after the ICV verified: marks `seq` (a value check() returned) as received.
  void update(std::uint64_t seq);

  std::uint64_t highest() const { return top_; }

  // The window as a value another node can continue from (cluster moves): the highest
  // authenticated number and, in `received`, bit k (word k / 64, bit k % 64) set when
  // `top - k` was received, for k below the window size.
  struct State {
    std::uint64_t top = 0;
    std::vector<std::uint64_t> received;
    friend bool operator==(const State&, const State&) = default;
  };
  State state() const;
  // Continues from `s`; bits beyond this window's size are ignored, so a smaller window
  // keeps the newest part.
  void restore(const State& s);
  std::uint32_t size() const { return size_; }
  bool esn() const { return esn_; }

 private:
  // A ring of bits, as in RFC 6479, indexed by the sequence number itself (bit seq % 64
  // of word (seq / 64) % words), so that advancing never shifts bits. The ring holds
  // exactly max(size, 64) numbers, without RFC 6479's spare word: any `size`
  // consecutive numbers fall on distinct bits, and advancing clears the bits of the
  // numbers it skips over (whole words in the middle, masks at the ends). That halves
  // the bitmap of the default window (128 octets, not 256), and every inbound SA has one.
  std::size_t words() const { return static_cast<std::size_t>(mask_ + 1); }
  void clear(std::uint64_t from, std::uint64_t to);  // the bits of from..to, to - from < ring

  std::unique_ptr<std::uint64_t[]> bitmap_;
  std::uint64_t top_ = 0;   // highest authenticated sequence number; 0 before any
  std::uint32_t mask_ = 0;  // words() - 1; words() is a power of two, at most 2^14
  std::uint32_t size_ = kDefaultSize;
  bool esn_ = false;
};

}  // namespace mobike::esp
