#include "esp/replay_window.h"

#include <algorithm>
#include <bit>

namespace mobike::esp {

bool ReplayWindow::valid_size(std::uint32_t size) {
  return size >= kMinSize && size <= kMaxSize && std::has_single_bit(size);
}

ReplayWindow::ReplayWindow(std::uint32_t size, bool esn)
    : size_(std::bit_ceil(std::clamp(size, kMinSize, kMaxSize))), esn_(esn) {
  const std::uint32_t words = (size_ + 63) / 64;  // a power of two, as size_ is
  bitmap_ = std::make_unique<std::uint64_t[]>(words);  // zeroed
  mask_ = words - 1;
}

ReplayWindow::ReplayWindow(const ReplayWindow& o)
    : bitmap_(std::make_unique<std::uint64_t[]>(o.words())),
      top_(o.top_),
      mask_(o.mask_),
      size_(o.size_),
      esn_(o.esn_) {
  std::copy_n(o.bitmap_.get(), o.words(), bitmap_.get());
}

ReplayWindow& ReplayWindow::operator=(const ReplayWindow& o) {
  if (this != &o) *this = ReplayWindow(o);
  return *this;
}

std::optional<std::uint64_t> ReplayWindow::check(std::uint32_t seq_low) const {
  std::uint64_t seq = seq_low;
  if (esn_) {
    const auto tl = static_cast<std::uint32_t>(top_);
    const std::uint64_t th = top_ >> 32;
    const std::uint32_t bottom = tl - size_ + 1;  // modulo 2^32, as in Appendix A2.2
    std::uint64_t hi = th;
    if (tl >= size_ - 1) {
      // Case A: the window lies within one 2^32 subspace; a number below it can only
      // belong to the next subspace.
      if (seq_low < bottom) ++hi;
      if (hi > 0xffffffffu) return std::nullopt;  // past 2^64 - 1: never sent
    } else if (seq_low >= bottom) {
      // Case B: the window straddles two subspaces and this number is in the lower one.
      if (th == 0) return std::nullopt;  // there is no subspace below the first
      --hi;
    }
    seq = hi << 32 | seq_low;
  }
  if (seq == 0) return std::nullopt;
  if (seq > top_) return seq;
  if (top_ - seq >= size_) return std::nullopt;
  if (bitmap_[(seq >> 6) & mask_] >> (seq & 63) & 1) return std::nullopt;
  return seq;
}

void ReplayWindow::clear(std::uint64_t from, std::uint64_t to) {
  for (;;) {
    const std::uint64_t word_end = from | 63;  // the last number sharing from's word
    const unsigned lo = from & 63, hi = word_end < to ? 63 : to & 63;
    const std::uint64_t bits = hi - lo == 63 ? ~std::uint64_t{0} : ((std::uint64_t{1} << (hi - lo + 1)) - 1) << lo;
    bitmap_[(from >> 6) & mask_] &= ~bits;
    if (word_end >= to) return;  // also ends the loop where word_end + 1 would wrap
    from = word_end + 1;
  }
}

void ReplayWindow::update(std::uint64_t seq) {
  if (seq > top_) {
    // The bits of the numbers entering the window still hold the numbers one ring
    // earlier: those skipped over (top_ + 1 .. seq - 1) are cleared, seq's own is set
    // below. In order traffic (seq == top_ + 1) skips none.
    if (const std::uint64_t skipped = seq - top_ - 1; skipped > 0) {
      if (skipped >= std::uint64_t{words()} * 64)
        std::fill_n(bitmap_.get(), words(), 0);
      else
        clear(top_ + 1, seq - 1);
    }
    top_ = seq;
  }
  bitmap_[(seq >> 6) & mask_] |= std::uint64_t{1} << (seq & 63);
}

ReplayWindow::State ReplayWindow::state() const {
  State s;
  s.top = top_;
  s.received.assign((size_ + 63) / 64, 0);
  for (std::uint64_t k = 0; k < size_ && k < top_; ++k) {
    const std::uint64_t seq = top_ - k;
    if (bitmap_[(seq >> 6) & mask_] >> (seq & 63) & 1) s.received[k / 64] |= std::uint64_t{1} << (k % 64);
  }
  return s;
}

void ReplayWindow::restore(const State& s) {
  std::fill_n(bitmap_.get(), words(), 0);
  top_ = s.top;
  for (std::uint64_t k = 0; k < size_ && k < s.top && k / 64 < s.received.size(); ++k) {
    if (!(s.received[k / 64] >> (k % 64) & 1)) continue;
    const std::uint64_t seq = s.top - k;
    bitmap_[(seq >> 6) & mask_] |= std::uint64_t{1} << (seq & 63);
  }
}

}  // namespace mobike::esp
