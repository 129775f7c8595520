#include "ike/eap_mschapv2.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "crypto/wipe.h"
#include "wire/reader.h"
#include "wire/writer.h"

namespace mobike::ike::eap {

namespace ms = crypto::mschapv2;

namespace {

enum class OpCode : std::uint8_t { kChallenge = 1, kResponse = 2, kSuccess = 3, kFailure = 4 };

constexpr std::size_t kValueSize = 49;  // peer challenge 16, reserved 8, NT-Response 24, flags 1
constexpr char kServerName[] = "mobiked";

// OpCode, MS-CHAPv2-ID, MS-Length (the EAP Length less 5) and the rest.
Bytes ms_packet(OpCode op, std::uint8_t ms_id, ByteView body) {
  wire::Writer w;
  w.u8(static_cast<std::uint8_t>(op));
  w.u8(ms_id);
  w.u16(static_cast<std::uint16_t>(4 + body.size()));
  w.bytes(body);
  return std::move(w).take();
}

struct MsHeader {
  OpCode op;
  std::uint8_t ms_id = 0;
  ByteView body;
};

// Success and Failure Responses are the bare OpCode; the rest carry ID and MS-Length.
Expected<MsHeader, std::string> ms_header(ByteView data) {
  wire::Reader r(data);
  std::uint8_t op = 0, id = 0;
  std::uint16_t ms_length = 0;
  if (!r.read_u8(op)) return unexpected(std::string("EAP-MSCHAPv2 packet without an OpCode"));
  MsHeader h{static_cast<OpCode>(op)};
  if (r.empty()) return h;
  if (!r.read_u8(id) || !r.read_u16(ms_length))
    return unexpected(std::string("EAP-MSCHAPv2 header truncated"));
  // MS-Length counts from the OpCode; some peers get it wrong by the type octet, so only
  // a length beyond the data is refused.
  if (ms_length > data.size() + 1) return unexpected("EAP-MSCHAPv2 MS-Length " + std::to_string(ms_length) + " beyond the packet");
  h.ms_id = id;
  h.body = r.read_rest();
  return h;
}

std::string upper_hex(ByteView b) {
  std::string h = to_hex(b);
  std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return h;
}

Bytes text_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

}  // namespace

// ---------------------------------------------------------------- server

MschapV2Server::MschapV2Server(std::string identity, std::shared_ptr<const Secrets> secrets, crypto::Random& random)
    : identity_(std::move(identity)), secrets_(std::move(secrets)), random_(random) {}

MschapV2Server::~MschapV2Server() {
  crypto::wipe(msk_);
  crypto::wipe(pending_msk_);
}

Bytes MschapV2Server::start(std::uint8_t identifier) {
  random_.fill(challenge_);
  ms_id_ = identifier;
  Bytes body{static_cast<std::uint8_t>(challenge_.size())};
  append(body, challenge_);
  append(body, text_bytes(kServerName));
  return encode({Code::kRequest, identifier, Type::kMschapv2, ms_packet(OpCode::kChallenge, ms_id_, body)});
}

Step MschapV2Server::process(const Packet& response, std::uint8_t next_identifier) {
  auto h = ms_header(response.data);
  if (!h) return {Outcome::kFailure, {}, h.error()};
  if (h->op == OpCode::kSuccess && success_sent_) {
    msk_ = std::move(pending_msk_);
    return {Outcome::kSuccess, {}, {}};
  }
  if (h->op != OpCode::kResponse || success_sent_)
    return {Outcome::kFailure, {}, "unexpected EAP-MSCHAPv2 OpCode " + std::to_string(static_cast<unsigned>(h->op))};
  if (h->ms_id != ms_id_) return {Outcome::kFailure, {}, "EAP-MSCHAPv2 Response for another challenge"};
  wire::Reader r(h->body);
  std::uint8_t value_size = 0;
  ByteView peer_challenge, reserved, nt;
  std::uint8_t flags = 0;
  if (!r.read_u8(value_size) || value_size != kValueSize || !r.read_view(16, peer_challenge) ||
      !r.read_view(8, reserved) || !r.read_view(24, nt) || !r.read_u8(flags))
    return {Outcome::kFailure, {}, "malformed EAP-MSCHAPv2 Response"};
  ByteView name_octets = r.read_rest();
  name_ = std::string(name_octets.begin(), name_octets.end());
  // The name the peer answers with must be the identity it gave: otherwise one user's
  // password would authenticate another's identity.
  if (name_ != identity_)
    return {Outcome::kFailure, {}, "EAP-MSCHAPv2 name '" + name_ + "' is not the EAP identity '" + identity_ + "'"};
  auto it = secrets_ ? secrets_->find(name_) : Secrets::const_iterator{};
  if (!secrets_ || it == secrets_->end()) return {Outcome::kFailure, {}, "no EAP secret for '" + name_ + "'"};
  ms::Challenge pc;
  std::memcpy(pc.data(), peer_challenge.data(), 16);
  const ms::Hash16 ph = ms::nt_password_hash(it->second);
  const auto user = ms::user_name_of(name_);
  const ms::NtResponse expected = ms::nt_response(challenge_, pc, user, ph);
  // Compared in constant time: the NT-Response is a password verifier.
  unsigned diff = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) diff |= expected[i] ^ nt[i];
  if (diff != 0) return {Outcome::kFailure, {}, "EAP-MSCHAPv2 password of '" + name_ + "' does not match"};
  ms::NtResponse got;
  std::memcpy(got.data(), nt.data(), got.size());
  pending_msk_ = ms::msk(ph, got);
  const auto auth = ms::authenticator_response(ph, got, pc, challenge_, user);
  const std::string message = "S=" + upper_hex(auth) + " M=Welcome to mobiked";
  success_sent_ = true;
  return {Outcome::kContinue,
          encode({Code::kRequest, next_identifier, Type::kMschapv2, ms_packet(OpCode::kSuccess, ms_id_, text_bytes(message))}),
          {}};
}

// ---------------------------------------------------------------- peer

MschapV2Peer::MschapV2Peer(std::string identity, std::shared_ptr<const Secrets> secrets, crypto::Random& random)
    : identity_(std::move(identity)), secrets_(std::move(secrets)), random_(random) {}

MschapV2Peer::~MschapV2Peer() {
  crypto::wipe(msk_);
  crypto::wipe(pending_msk_);
}

Step MschapV2Peer::process(const Packet& request) {
  auto h = ms_header(request.data);
  if (!h) return {Outcome::kFailure, {}, h.error()};
  switch (h->op) {
    case OpCode::kChallenge: {
      if (responded_) return {Outcome::kFailure, {}, "a second EAP-MSCHAPv2 Challenge"};
      wire::Reader r(h->body);
      std::uint8_t size = 0;
      ByteView challenge;
      if (!r.read_u8(size) || size != 16 || !r.read_view(16, challenge))
        return {Outcome::kFailure, {}, "malformed EAP-MSCHAPv2 Challenge"};
      auto it = secrets_ ? secrets_->find(identity_) : Secrets::const_iterator{};
      if (!secrets_ || it == secrets_->end()) return {Outcome::kFailure, {}, "no EAP secret for '" + identity_ + "'"};
      ms::Challenge ac, pc;
      std::memcpy(ac.data(), challenge.data(), 16);
      random_.fill(pc);
      const ms::Hash16 ph = ms::nt_password_hash(it->second);
      const auto user = ms::user_name_of(identity_);
      const ms::NtResponse nt = ms::nt_response(ac, pc, user, ph);
      expected_auth_ = ms::authenticator_response(ph, nt, pc, ac, user);
      pending_msk_ = ms::msk(ph, nt);
      Bytes body{static_cast<std::uint8_t>(kValueSize)};
      append(body, pc);
      body.insert(body.end(), 8, 0);
      append(body, nt);
      body.push_back(0);
      append(body, text_bytes(identity_));
      responded_ = true;
      return {Outcome::kContinue,
              encode({Code::kResponse, request.identifier, Type::kMschapv2, ms_packet(OpCode::kResponse, h->ms_id, body)}),
              {}};
    }
    case OpCode::kSuccess: {
      if (!responded_ || done_) return {Outcome::kFailure, {}, "unexpected EAP-MSCHAPv2 Success"};
      // "S=<40 hex digits>" then, optionally, " M=<message>".
      std::string text(h->body.begin(), h->body.end());
      if (text.size() < 42 || text.compare(0, 2, "S=") != 0)
        return {Outcome::kFailure, {}, "EAP-MSCHAPv2 Success without an authenticator response"};
      Bytes got = from_hex(text.substr(2, 40));
      if (got.size() != 20 || !std::equal(got.begin(), got.end(), expected_auth_.begin()))
        return {Outcome::kFailure, {}, "the gateway's EAP-MSCHAPv2 authenticator response is wrong (it does not know our password)"};
      done_ = true;
      msk_ = std::move(pending_msk_);
      return {Outcome::kSuccess, encode({Code::kResponse, request.identifier, Type::kMschapv2, Bytes{static_cast<std::uint8_t>(OpCode::kSuccess)}}), {}};
    }
    case OpCode::kFailure: {
      std::string text(h->body.begin(), h->body.end());
      for (auto& c : text)
        if (!std::isprint(static_cast<unsigned char>(c))) c = '?';
      return {Outcome::kFailure, {}, "EAP-MSCHAPv2 failed: " + text};
    }
    default: break;
  }
  return {Outcome::kFailure, {}, "unsupported EAP-MSCHAPv2 OpCode " + std::to_string(static_cast<unsigned>(h->op))};
}

}  // namespace mobike::ike::eap
