#include "ike/response_cache.h"

#include <algorithm>
#include <cstring>

#include "ike/ike_sa.h"
#include "ike/protection.h"
#include "wire/codec.h"

namespace mobike::ike {

namespace {

// The CERT payload's generic header and Certificate Encoding octet (RFC 7296 §3.6):
// what precedes the DER.
constexpr std::size_t kCertBodyOffset = 5;

std::shared_ptr<const crypto::Certificate> shared_cert(const IkeSa& sa, const wire::Payload& payload) {
  auto* cert = payload.type == wire::PayloadType::kCert ? std::get_if<wire::CertPayload>(&payload.body) : nullptr;
  if (!cert || !sa.config) return nullptr;
  for (const auto& c : sa.config->local_certs)
    if (c->der() == cert->data) return c;
  return nullptr;
}

// Hands out what `source` draws and keeps a copy.
class Recording final : public crypto::Random {
 public:
  Recording(crypto::Random& source, Bytes& drawn) : source_(source), drawn_(drawn) {}
  void fill(std::span<std::uint8_t> out) override {
    source_.fill(out);
    append(drawn_, out);
  }

 private:
  crypto::Random& source_;
  Bytes& drawn_;
};

// Hands out the recorded octets again. Sealing the same plaintext the same way draws
// the same amounts; should it ever ask for more or fewer (a bug), exact() is false and
// what it sealed is not sent: zeros for IVs must not leave.
class Replaying final : public crypto::Random {
 public:
  explicit Replaying(ByteView drawn) : drawn_(drawn) {}
  void fill(std::span<std::uint8_t> out) override {
    if (out.size() > drawn_.size() - used_) {
      exhausted_ = true;
      std::fill(out.begin(), out.end(), 0);
      return;
    }
    std::memcpy(out.data(), drawn_.data() + used_, out.size());
    used_ += out.size();
  }
  bool exact() const { return !exhausted_ && used_ == drawn_.size(); }

 private:
  ByteView drawn_;
  std::size_t used_ = 0;
  bool exhausted_ = false;
};

}  // namespace

bool ResponseCache::empty() const {
  if (auto* sealed = std::get_if<std::vector<Bytes>>(&kept_)) return sealed->empty();
  return false;
}

void ResponseCache::keep_sealed(std::vector<Bytes> datagrams) { kept_ = std::move(datagrams); }

std::vector<Bytes> ResponseCache::keep_protected(const IkeSa& sa, wire::ExchangeType exchange,
                                                 std::uint32_t message_id, const std::vector<wire::Payload>& payloads,
                                                 std::size_t fragment_limit, crypto::Random& random) {
  Plaintext p;
  p.message_id = message_id;
  p.exchange = exchange;
  p.fragment_limit = static_cast<std::uint32_t>(std::min<std::size_t>(fragment_limit, UINT32_MAX));
  Bytes encoded = wire::encode_payloads(payloads, &p.first_inner);
  Bytes drawn;
  Recording recording(random, drawn);
  auto datagrams =
      seal_datagrams(sa, exchange, true, message_id, p.first_inner, encoded, recording, p.fragment_limit);
  if (drawn.size() > UINT16_MAX) {
    // Not a size a response of ours reaches; keep it as sent rather than truncate.
    kept_ = datagrams;
    return datagrams;
  }
  p.iv_octets = static_cast<std::uint16_t>(drawn.size());
  // Where each of our certificates' DER lies in `encoded`: walk the payload chain, one
  // generic header per payload, in the order they were encoded.
  struct Cut {
    std::size_t from, to;
    std::shared_ptr<const crypto::Certificate> cert;
  };
  std::vector<Cut> cuts;
  std::size_t pos = 0, cut_octets = 0;
  for (const auto& payload : payloads) {
    if (pos + 4 > encoded.size()) break;
    std::size_t len = static_cast<std::size_t>(encoded[pos + 2]) << 8 | encoded[pos + 3];
    if (len < 4 || pos + len > encoded.size()) break;
    if (auto cert = shared_cert(sa, payload); cert && len == kCertBodyOffset + cert->der().size()) {
      cuts.push_back({pos + kCertBodyOffset, pos + len, std::move(cert)});
      cut_octets += len - kCertBodyOffset;
    }
    pos += len;
  }
  // A chain this walk does not follow (not ours to encode otherwise): keep it whole.
  if (pos != encoded.size()) cuts.clear(), cut_octets = 0;
  p.octets.reserve(drawn.size() + encoded.size() - cut_octets);
  append(p.octets, drawn);
  std::size_t from = 0;
  for (auto& c : cuts) {
    p.octets.insert(p.octets.end(), encoded.begin() + static_cast<std::ptrdiff_t>(from),
                    encoded.begin() + static_cast<std::ptrdiff_t>(c.from));
    p.certs.push_back({static_cast<std::uint32_t>(p.octets.size() - drawn.size()), std::move(c.cert)});
    from = c.to;
  }
  p.octets.insert(p.octets.end(), encoded.begin() + static_cast<std::ptrdiff_t>(from), encoded.end());
  kept_ = std::move(p);
  return datagrams;
}

std::vector<Bytes> ResponseCache::datagrams(const IkeSa& sa) const {
  if (auto* sealed = std::get_if<std::vector<Bytes>>(&kept_)) return *sealed;
  const auto& p = std::get<Plaintext>(kept_);
  if (!sa.crypto.out) return {};
  ByteView all(p.octets);
  ByteView plain = all.subspan(p.iv_octets);
  Bytes spliced;
  if (!p.certs.empty()) {
    std::size_t size = plain.size();
    for (const auto& c : p.certs) size += c.cert->der().size();
    spliced.reserve(size);
    std::size_t from = 0;
    for (const auto& c : p.certs) {
      append(spliced, plain.subspan(from, c.at - from));
      append(spliced, c.cert->der());
      from = c.at;
    }
    append(spliced, plain.subspan(from));
    plain = spliced;
  }
  Replaying replay(all.first(p.iv_octets));
  auto out = seal_datagrams(sa, p.exchange, true, p.message_id, p.first_inner, plain, replay, p.fragment_limit);
  if (!replay.exact()) return {};
  return out;
}

std::size_t ResponseCache::octets() const {
  if (auto* sealed = std::get_if<std::vector<Bytes>>(&kept_)) {
    std::size_t n = 0;
    for (const auto& d : *sealed) n += d.capacity();
    return n;
  }
  const auto& p = std::get<Plaintext>(kept_);
  return p.octets.capacity() + p.certs.capacity() * sizeof(CertCut);
}

}  // namespace mobike::ike
