// The swanctl words for authentication classes and start actions: one table serves the
// config loader and list-conns, so every value reads back as itself.
#include <gtest/gtest.h>

#include "ike/connection.h"

namespace mobike::ike {
namespace {

TEST(ConnectionWords, AuthClassesReadBackAsThemselves) {
  for (auto c : {AuthClass::kPsk, AuthClass::kPubkey, AuthClass::kEapMschapv2, AuthClass::kEapTls}) {
    auto word = to_string(c);
    EXPECT_NE(word, "?");
    EXPECT_EQ(auth_class_from_string(word), c) << word;
  }
  EXPECT_EQ(to_string(AuthClass::kEapTls), "eap-tls");
  EXPECT_FALSE(auth_class_from_string("PSK"));
  EXPECT_FALSE(auth_class_from_string("eap"));
}

TEST(ConnectionWords, StartActionsReadBackAsThemselves) {
  for (auto a : {StartAction::kNone, StartAction::kInitiate, StartAction::kTrap}) {
    auto word = to_string(a);
    EXPECT_NE(word, "?");
    EXPECT_EQ(start_action_from_string(word), a) << word;
  }
  EXPECT_EQ(to_string(StartAction::kTrap), "trap");
  EXPECT_FALSE(start_action_from_string("start"));
}

}  // namespace
}  // namespace mobike::ike
