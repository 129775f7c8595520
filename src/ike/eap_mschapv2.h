// EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2): Challenge, Response, Success and
// Failure packets around MS-CHAPv2 (crypto/mschapv2.h). The MSK makes the AUTH of both
// IKE ends after EAP (RFC 7296 §2.16). The server does not retry a wrong password: it
// ends with EAP-Failure at once, as strongSwan does after its retries.
#pragma once

#include "crypto/mschapv2.h"
#include "ike/eap.h"

namespace mobike::ike::eap {

class MschapV2Server final : public ServerMethod {
 public:
  MschapV2Server(std::string identity, std::shared_ptr<const Secrets> secrets, crypto::Random& random);
  ~MschapV2Server() override;
  Type type() const override { return Type::kMschapv2; }
  Bytes start(std::uint8_t identifier) override;
  Step process(const Packet& response, std::uint8_t next_identifier) override;
  const Bytes& msk() const override { return msk_; }
  const std::string& authenticated() const override { return name_; }

 private:
  std::string identity_, name_;
  std::shared_ptr<const Secrets> secrets_;
  crypto::Random& random_;
  crypto::mschapv2::Challenge challenge_{};
  std::uint8_t ms_id_ = 0;
  bool success_sent_ = false;
  Bytes msk_, pending_msk_;
};

class MschapV2Peer final : public PeerMethod {
 public:
  MschapV2Peer(std::string identity, std::shared_ptr<const Secrets> secrets, crypto::Random& random);
  ~MschapV2Peer() override;
  Type type() const override { return Type::kMschapv2; }
  Step process(const Packet& request) override;
  bool done() const override { return done_; }
  const Bytes& msk() const override { return msk_; }

 private:
  std::string identity_;
  std::shared_ptr<const Secrets> secrets_;
  crypto::Random& random_;
  std::array<std::uint8_t, 20> expected_auth_{};
  bool responded_ = false, done_ = false;
  Bytes msk_, pending_msk_;
};

}  // namespace mobike::ike::eap
