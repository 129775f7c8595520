// The journal entries mobiked writes under systemd. No journald runs where these tests
// run, so the entries are checked as the field lists handed to sd_journal_sendv.
#include "daemon/journal_log.h"

#include <gtest/gtest.h>
#include <syslog.h>

#include "ike/engine.h"
#include "ike/ike_sa.h"

namespace mobike::daemon {
namespace {

// IkeSa is neither copied nor moved: filled in place.
void fill(ike::IkeSa& sa) {
  sa.id = 42;
  sa.connection_name = "roadwarriors";
  sa.remote = Endpoint{*IpAddress::parse("198.51.100.3"), 4500};
}

TEST(JournalLog, SaFieldsOfAnIkeSa) {
  ike::IkeSa sa;
  fill(sa);
  auto f = sa_fields(sa);
  EXPECT_EQ(f.id, 42u);
  EXPECT_EQ(f.connection, "roadwarriors");
  EXPECT_EQ(f.peer, sa.remote);
}

TEST(JournalLog, PlainLineHasMessagePriorityAndIdentifier) {
  auto f = journal_fields(spdlog::level::warn, "listening on 0.0.0.0:500", "mobiked", nullptr);
  EXPECT_EQ(f,
            (std::vector<std::string>{"MESSAGE=listening on 0.0.0.0:500", "PRIORITY=4", "SYSLOG_IDENTIFIER=mobiked"}));
}

TEST(JournalLog, SaLineCarriesTheSaAsFields) {
  ike::IkeSa ike_sa;
  fill(ike_sa);
  auto sa = sa_fields(ike_sa);
  auto f = journal_fields(spdlog::level::info, "[roadwarriors|42] established", "mobiked", &sa);
  EXPECT_EQ(f, (std::vector<std::string>{"MESSAGE=[roadwarriors|42] established", "PRIORITY=6",
                                         "SYSLOG_IDENTIFIER=mobiked", "MOBIKED_IKE_SA=42",
                                         "MOBIKED_CONNECTION=roadwarriors", "MOBIKED_PEER=198.51.100.3:4500"}));
}

TEST(JournalLog, PeerFieldFollowsTheSasCurrentAddressAndBracketsIpv6) {
  ike::IkeSa ike_sa;
  fill(ike_sa);
  ike_sa.remote = Endpoint{*IpAddress::parse("2001:db8::7"), 500};
  auto sa = sa_fields(ike_sa);
  auto f = journal_fields(spdlog::level::debug, "moved", "mobiked", &sa);
  ASSERT_EQ(f.size(), 6u);
  EXPECT_EQ(f[5], "MOBIKED_PEER=[2001:db8::7]:500");
}

TEST(JournalLog, AnSaThatIsGoneHasNoPeerField) {
  SaFields sa{7, "gw", std::nullopt};
  auto f = journal_fields(spdlog::level::info, "gw[7] IKE SA deleted", "mobiked", &sa);
  EXPECT_EQ(f, (std::vector<std::string>{"MESSAGE=gw[7] IKE SA deleted", "PRIORITY=6", "SYSLOG_IDENTIFIER=mobiked",
                                         "MOBIKED_IKE_SA=7", "MOBIKED_CONNECTION=gw"}));
}

TEST(JournalLog, MessageKeepsNewlines) {
  // sd_journal_sendv takes each field as one buffer: a newline stays part of MESSAGE.
  auto f = journal_fields(spdlog::level::err, "line one\nline two", "mobiked", nullptr);
  EXPECT_EQ(f[0], "MESSAGE=line one\nline two");
}

TEST(JournalLog, PrioritiesAreSyslogs) {
  EXPECT_EQ(syslog_priority(spdlog::level::trace), LOG_DEBUG);
  EXPECT_EQ(syslog_priority(spdlog::level::debug), LOG_DEBUG);
  EXPECT_EQ(syslog_priority(spdlog::level::info), LOG_INFO);
  EXPECT_EQ(syslog_priority(spdlog::level::warn), LOG_WARNING);
  EXPECT_EQ(syslog_priority(spdlog::level::err), LOG_ERR);
  EXPECT_EQ(syslog_priority(spdlog::level::critical), LOG_CRIT);
}

TEST(LogRecord, LineIsTheTextEveryOtherSinkShows) {
  ike::IkeSa sa;
  fill(sa);
  EXPECT_EQ((ike::LogRecord{ike::LogLevel::kInfo, "established", &sa}.line()), "[roadwarriors|42] established");
  EXPECT_EQ((ike::LogRecord{ike::LogLevel::kInfo, "no SA", nullptr}.line()), "no SA");
}

}  // namespace
}  // namespace mobike::daemon
