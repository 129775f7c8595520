// libFuzzer target for EAP as the gateway and the client see it after IKE decrypted it
// (ike/eap.h): the codec, and both conversation ends fed arbitrary packets at every
// step of an EAP-MSCHAPv2 run. Properties: nothing crashes or reads out of bounds, a
// packet that parses re-encodes to the same octets, and neither end reports success
// to a packet that did not come from a correct counterpart.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "crypto/cert_builder.h"
#include "crypto/random.h"
#include "ike/eap.h"

namespace {

using namespace mobike;
using namespace mobike::ike::eap;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_eap: %s\n", what);
  std::abort();
}

std::shared_ptr<const Secrets> users() {
  static auto u = std::make_shared<const Secrets>(Secrets{{"carol", "pw"}});
  return u;
}

// EAP-TLS: a gateway certificate made once, trusted by both ends.
const Credentials& tls_credentials() {
  static const Credentials c = [] {
    Credentials k;
    auto key = crypto::PrivateKey::generate(crypto::KeyType::kEcdsaP256);
    auto cert = crypto::issue_certificate({.subject = "CN=gw", .ca = true}, *key, nullptr, *key);
    auto trust = std::make_shared<crypto::TrustStore>();
    trust->add_anchor(cert);
    k.key = key;
    k.certs = {cert};
    k.trust = trust;
    return k;
  }();
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteView in(data, size);
  if (auto p = parse(in)) {
    if (encode(*p) != Bytes(in.begin(), in.end())) fail("a parsed packet re-encodes differently");
  }
  crypto::SeededRandom r1(1), r2(2);
  // The gateway: the first answer is the input, after EAP-Identity or straight to MSCHAPv2.
  for (bool ask : {true, false}) {
    Server server(Type::kMschapv2, ask ? std::nullopt : std::optional<std::string>("carol"), users(), r1);
    server.start();
    Step s = server.process(in);
    if (s.outcome == Outcome::kSuccess) fail("the server succeeded on its first response");
  }
  // EAP-TLS, both ends: the input as the first answer to Start, and as a first request.
  {
    Server server(Type::kTls, std::string("carol"), tls_credentials(), r1);
    server.start();
    if (server.process(in).outcome == Outcome::kSuccess) fail("the TLS server succeeded on its first response");
    Peer peer(Type::kTls, "carol", tls_credentials(), r2);
    if (peer.process(in).outcome == Outcome::kSuccess) fail("the TLS peer succeeded on a first request");
  }
  // The client: the input as the first request, then as the one after a real Challenge.
  Peer peer(Type::kMschapv2, "carol", users(), r2);
  if (peer.process(in).outcome == Outcome::kSuccess) fail("the peer succeeded on a first request");
  Server real(Type::kMschapv2, std::string("carol"), users(), r1);
  Peer second(Type::kMschapv2, "carol", users(), r2);
  second.process(real.start());
  if (second.process(in).outcome == Outcome::kSuccess) fail("the peer succeeded without the server's proof");
  return 0;
}
