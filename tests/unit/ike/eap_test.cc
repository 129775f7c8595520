// The EAP codec and the two conversation ends (ike/eap.h) without IKE: malformed
// packets, identifiers, Nak, EAP-Success too early, and a whole MSCHAPv2 run.
#include "ike/eap.h"

#include <gtest/gtest.h>

namespace mobike::ike::eap {
namespace {

using Users = Secrets;
std::shared_ptr<const Users> users(Users u) { return std::make_shared<const Users>(std::move(u)); }

TEST(EapCodec, RoundTripAndStrictLengths) {
  Packet p{Code::kResponse, 7, Type::kIdentity, {'c', 'a', 'r', 'o', 'l'}};
  Bytes b = encode(p);
  EXPECT_EQ(b, (Bytes{2, 7, 0, 10, 1, 'c', 'a', 'r', 'o', 'l'}));
  auto back = parse(b);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->identifier, 7);
  EXPECT_EQ(back->data, p.data);
  EXPECT_EQ(encode({Code::kSuccess, 9, {}, {}}), (Bytes{3, 9, 0, 4}));
  EXPECT_EQ(describe(*back), "Response/Identity #7");

  EXPECT_FALSE(parse(Bytes{2, 7, 0}));                          // no room for the length
  EXPECT_FALSE(parse(Bytes{2, 7, 0, 11, 1, 'x'}));              // Length beyond the octets
  EXPECT_FALSE(parse(Bytes{2, 7, 0, 5, 1, 'x'}));               // Length short of them
  EXPECT_FALSE(parse(Bytes{5, 7, 0, 4}));                       // unknown code
  EXPECT_FALSE(parse(Bytes{3, 7, 0, 5, 0}));                    // Success with data
  EXPECT_FALSE(parse(Bytes{1, 7, 0, 4}));                       // Request without a type
}

TEST(EapConversation, MschapV2AfterIdentityGivesBothEndsTheSameMsk) {
  crypto::SeededRandom r1(1), r2(2);
  Server server(Type::kMschapv2, std::nullopt, users({{"carol", "pw"}}), r1);
  Peer peer(Type::kMschapv2, "carol", users({{"carol", "pw"}}), r2);
  Bytes to_peer = server.start();
  ASSERT_EQ(parse(to_peer)->type, Type::kIdentity);
  for (int round = 0; round < 4; ++round) {
    Step answer = peer.process(to_peer);
    if (answer.outcome == Outcome::kSuccess) break;
    ASSERT_EQ(answer.outcome, Outcome::kContinue) << answer.why;
    Step next = server.process(answer.message);
    ASSERT_NE(next.outcome, Outcome::kFailure) << next.why;
    to_peer = next.message;
    if (next.outcome == Outcome::kSuccess) {
      EXPECT_EQ(parse(to_peer)->code, Code::kSuccess);
      EXPECT_EQ(peer.process(to_peer).outcome, Outcome::kSuccess);
      break;
    }
  }
  EXPECT_EQ(server.identity(), "carol");
  ASSERT_EQ(server.msk().size(), 64u);
  EXPECT_EQ(server.msk(), peer.msk());
}

TEST(EapConversation, ServerRefusesAStaleIdentifierAndANak) {
  crypto::SeededRandom r(3);
  Server server(Type::kMschapv2, std::string("carol"), users({{"carol", "pw"}}), r);
  auto challenge = *parse(server.start());
  Step s = server.process(encode({Code::kResponse, static_cast<std::uint8_t>(challenge.identifier + 1),
                                  Type::kMschapv2, {2}}));
  EXPECT_EQ(s.outcome, Outcome::kFailure);
  EXPECT_EQ(parse(s.message)->code, Code::kFailure);
  Server again(Type::kMschapv2, std::string("carol"), users({{"carol", "pw"}}), r);
  challenge = *parse(again.start());
  s = again.process(encode({Code::kResponse, challenge.identifier, Type::kNak, {13}}));
  EXPECT_EQ(s.outcome, Outcome::kFailure);
  EXPECT_NE(s.why.find("Nak, wants TLS"), std::string::npos) << s.why;
}

TEST(EapConversation, PeerNaksOtherMethodsAndRefusesAnEarlySuccess) {
  crypto::SeededRandom r(4);
  Peer peer(Type::kMschapv2, "carol", users({{"carol", "pw"}}), r);
  Step s = peer.process(encode({Code::kRequest, 1, Type::kMd5, {16}}));
  ASSERT_EQ(s.outcome, Outcome::kContinue);
  EXPECT_EQ(s.message, (Bytes{2, 1, 0, 6, 3, 26}));  // Nak naming MSCHAPv2
  s = peer.process(encode({Code::kSuccess, 2, {}, {}}));
  EXPECT_EQ(s.outcome, Outcome::kFailure);
  EXPECT_NE(s.why.find("before the method finished"), std::string::npos);
  EXPECT_EQ(peer.process(Bytes{1, 2, 0, 9, 26, 1}).outcome, Outcome::kFailure);  // bad length
  EXPECT_EQ(peer.process(encode({Code::kRequest, 3, Type::kMschapv2, {1, 3, 0, 5}})).outcome,
            Outcome::kFailure);  // a Challenge without its value
}

}  // namespace
}  // namespace mobike::ike::eap
