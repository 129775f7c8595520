#include <gtest/gtest.h>

#include "wire/constants.h"
#include "wire/payloads.h"

namespace mobike::wire {
namespace {

TEST(Names, NotifyNamesUseRfcSpelling) {
  EXPECT_EQ(notify_name(16400), "UPDATE_SA_ADDRESSES");
  EXPECT_EQ(notify_name(16396), "MOBIKE_SUPPORTED");
  EXPECT_EQ(notify_name(16401), "COOKIE2");
  EXPECT_EQ(notify_name(16388), "NAT_DETECTION_SOURCE_IP");
  EXPECT_EQ(notify_name(16422), "IKEV2_MESSAGE_ID_SYNC");
  EXPECT_EQ(notify_name(7), "INVALID_SYNTAX");
  EXPECT_EQ(notify_name(42), "USE_ASSIGNED_HoA");
  EXPECT_EQ(notify_name(16442), "USE_AGGFRAG");
  EXPECT_EQ(notify_name(61440), "SWITCH_TO_IP_ADDRESS");
}

TEST(Names, UnknownNotifyNumbers) {
  EXPECT_EQ(notify_name(0), "UNKNOWN");
  EXPECT_EQ(notify_name(2), "UNKNOWN");
  EXPECT_EQ(notify_name(61441), "UNKNOWN");
  EXPECT_EQ(notify_name(65535), "UNKNOWN");
}

// Every enumerator has a name: a value added to the enum without one shows up here.
TEST(Names, EveryNotifyEnumeratorIsNamed) {
  int named = 0;
  for (std::uint32_t v = 0; v <= 0xffff; ++v)
    if (notify_name(static_cast<std::uint16_t>(v)) != "UNKNOWN") ++named;
  EXPECT_EQ(named, 20 + 59 + 1);
}

TEST(Names, Exchanges) {
  EXPECT_EQ(exchange_name(ExchangeType::kIkeSaInit), "IKE_SA_INIT");
  EXPECT_EQ(exchange_name(ExchangeType::kIkeAuth), "IKE_AUTH");
  EXPECT_EQ(exchange_name(ExchangeType::kCreateChildSa), "CREATE_CHILD_SA");
  EXPECT_EQ(exchange_name(ExchangeType::kInformational), "INFORMATIONAL");
  EXPECT_EQ(exchange_name(static_cast<ExchangeType>(43)), "IKE_INTERMEDIATE");
  EXPECT_EQ(exchange_name(static_cast<ExchangeType>(1)), "UNKNOWN");
}

TEST(Names, Payloads) {
  EXPECT_EQ(payload_name(33), "SA");
  EXPECT_EQ(payload_name(35), "IDi");
  EXPECT_EQ(payload_name(36), "IDr");
  EXPECT_EQ(payload_name(38), "CERTREQ");
  EXPECT_EQ(payload_name(40), "Nonce");
  EXPECT_EQ(payload_name(41), "N");
  EXPECT_EQ(payload_name(44), "TSi");
  EXPECT_EQ(payload_name(45), "TSr");
  EXPECT_EQ(payload_name(46), "SK");
  EXPECT_EQ(payload_name(48), "EAP");
  EXPECT_EQ(payload_name(49), "UNKNOWN");
  EXPECT_EQ(payload_name(1), "UNKNOWN");
}

TEST(Notify, MakeNotifyFillsEveryField) {
  Payload p = make_notify(NotifyType::kRekeySa, {1}, ProtocolId::kEsp, {9, 9, 9, 9});
  EXPECT_EQ(p.type, PayloadType::kNotify);
  const auto& n = std::get<NotifyPayload>(p.body);
  EXPECT_EQ(n.notify_type(), NotifyType::kRekeySa);
  EXPECT_EQ(n.protocol, ProtocolId::kEsp);
  EXPECT_EQ(n.spi, (Bytes{9, 9, 9, 9}));
  EXPECT_EQ(n.data, Bytes{1});

  Payload q = make_notify(std::uint16_t{61440}, {192, 0, 2, 20});
  const auto& m = std::get<NotifyPayload>(q.body);
  EXPECT_EQ(m.type, 61440);
  EXPECT_EQ(m.protocol, ProtocolId::kNone);
  EXPECT_TRUE(m.spi.empty());
  EXPECT_EQ(m.data, (Bytes{192, 0, 2, 20}));
}

TEST(Notify, FindNotifyAndFindNotifies) {
  std::vector<Payload> v = {
      Payload{PayloadType::kNonce, NoncePayload{Bytes(16, 0)}},
      make_notify(NotifyType::kAdditionalIp4Address, {192, 0, 2, 1}),
      make_notify(NotifyType::kMobikeSupported),
      make_notify(NotifyType::kAdditionalIp4Address, {192, 0, 2, 2}),
  };
  const NotifyPayload* m = find_notify(v, NotifyType::kMobikeSupported);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m, &std::get<NotifyPayload>(v[2].body));
  EXPECT_EQ(find_notify(v, NotifyType::kCookie2), nullptr);
  auto first = find_notify(v, NotifyType::kAdditionalIp4Address);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->data, (Bytes{192, 0, 2, 1}));
  auto all = find_notifies(v, static_cast<std::uint16_t>(NotifyType::kAdditionalIp4Address));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]->data, (Bytes{192, 0, 2, 1}));
  EXPECT_EQ(all[1]->data, (Bytes{192, 0, 2, 2}));
  EXPECT_TRUE(find_notifies(v, 1).empty());
}

}  // namespace
}  // namespace mobike::wire
