#include "daemon/switch_job.h"

#include <gtest/gtest.h>

namespace mobike::daemon {
namespace {

using namespace std::chrono_literals;

IpAddress addr(const char* s) { return IpAddress::parse(s).value(); }

ike::Event event(ike::EventKind kind, std::uint64_t id, std::string detail = "", std::uint64_t replaces = 0) {
  ike::Event e;
  e.kind = kind;
  e.ike_sa_id = id;
  e.detail = std::move(detail);
  e.replaces = replaces;
  return e;
}

TEST(SwitchJob, GathersEveryOutcomeThenIsDone) {
  ike::TimePoint t0{};
  SwitchJob job({1, 2, 3, 4}, {{9, "we are the initiator"}}, addr("198.51.100.20"), 0, t0);
  std::vector<std::uint64_t> started;
  auto next = job.start_due(t0, [&](std::uint64_t id, const IpAddress& to) -> Expected<void, std::string> {
    EXPECT_EQ(to, addr("198.51.100.20"));
    started.push_back(id);
    if (id == 4) return unexpected(std::string("peer did not announce support"));
    return {};
  });
  EXPECT_FALSE(next);  // no rate: all at once
  EXPECT_EQ(started, (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_FALSE(job.done());
  job.on_event(event(ike::EventKind::kSwitchSucceeded, 1, "switched"));
  job.on_event(event(ike::EventKind::kSwitchRefused, 2, "not announced"));
  job.on_event(event(ike::EventKind::kSwitchSucceeded, 7, "not ours"));
  EXPECT_FALSE(job.done());
  job.on_event(event(ike::EventKind::kIkeDeleted, 3, "deleted by peer"));
  ASSERT_TRUE(job.done());
  auto r = job.result(t0 + 250ms);
  EXPECT_EQ(r["switched"], 1);
  EXPECT_EQ(r["refused"], 1);
  EXPECT_EQ(r["failed"], 1);
  EXPECT_EQ(r["not_started"], 2);
  EXPECT_DOUBLE_EQ(r["seconds"].get<double>(), 0.25);
  ASSERT_EQ(r["sas"].size(), 5u);
  EXPECT_EQ(r["sas"][3]["sa"], 4);
  EXPECT_EQ(r["sas"][3]["result"], "not started");
  EXPECT_EQ(r["sas"][3]["detail"], "peer did not announce support");
}

TEST(SwitchJob, RateSpreadsTheStarts) {
  ike::TimePoint t0{};
  SwitchJob job({1, 2, 3, 4, 5}, {}, addr("198.51.100.20"), 2.0, t0);  // 2 per second
  std::vector<std::uint64_t> started;
  auto start = [&](std::uint64_t id, const IpAddress&) -> Expected<void, std::string> {
    started.push_back(id);
    return {};
  };
  auto next = job.start_due(t0, start);
  EXPECT_EQ(started.size(), 1u);
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, t0 + 500ms);
  next = job.start_due(t0 + 1000ms, start);
  EXPECT_EQ(started.size(), 3u);
  next = job.start_due(t0 + 2000ms, start);
  EXPECT_EQ(started.size(), 5u);
  EXPECT_FALSE(next);
}

TEST(SwitchJob, FollowsAnIkeRekeyInsteadOfCallingItAFailure) {
  ike::TimePoint t0{};
  SwitchJob job({1, 2}, {}, addr("198.51.100.20"), 1.0, t0);  // SA 2 starts a second later
  auto start = [&](std::uint64_t, const IpAddress&) -> Expected<void, std::string> { return {}; };
  job.start_due(t0, start);
  // SA 1 is rekeyed to 11 while its switch runs; the old one's deletion is no failure.
  job.on_event(event(ike::EventKind::kIkeRekeyed, 11, "replaces IKE SA 1", 1));
  job.on_event(event(ike::EventKind::kIkeDeleted, 1, "deleted"));
  EXPECT_FALSE(job.done());
  // SA 2 is rekeyed to 12 before its turn: the successor is started.
  job.on_event(event(ike::EventKind::kIkeRekeyed, 12, "replaces IKE SA 2", 2));
  std::vector<std::uint64_t> started;
  job.start_due(t0 + 1000ms, [&](std::uint64_t id, const IpAddress&) -> Expected<void, std::string> {
    started.push_back(id);
    return {};
  });
  EXPECT_EQ(started, std::vector<std::uint64_t>{12});
  job.on_event(event(ike::EventKind::kSwitchSucceeded, 11, "switched"));
  job.on_event(event(ike::EventKind::kSwitchSucceeded, 12, "switched"));
  ASSERT_TRUE(job.done());
  auto r = job.result(t0 + 2s);
  EXPECT_EQ(r["switched"], 2);
  EXPECT_EQ(r["failed"], 0);
}

TEST(SwitchJob, CancelStartsNothingMoreAndWaitsForTheSwitchesInFlight) {
  ike::TimePoint t0{};
  SwitchJob job({1, 2, 3, 4}, {}, addr("198.51.100.20"), 1.0, t0);  // one SA a second
  auto start = [&](std::uint64_t, const IpAddress&) -> Expected<void, std::string> { return {}; };
  job.start_due(t0 + 1500ms, start);  // SAs 1 and 2 started
  EXPECT_EQ(job.cancel("cancelled"), 2u);
  EXPECT_FALSE(job.done());  // 1 and 2 are still switching
  std::vector<std::uint64_t> started;
  auto next = job.start_due(t0 + 10s, [&](std::uint64_t id, const IpAddress&) -> Expected<void, std::string> {
    started.push_back(id);
    return {};
  });
  EXPECT_TRUE(started.empty());
  EXPECT_FALSE(next);
  job.on_event(event(ike::EventKind::kSwitchSucceeded, 1, "switched"));
  job.on_event(event(ike::EventKind::kSwitchRefused, 2, "not announced"));
  ASSERT_TRUE(job.done());
  auto r = job.result(t0 + 3s);
  EXPECT_EQ(r["switched"], 1);
  EXPECT_EQ(r["refused"], 1);
  EXPECT_EQ(r["not_started"], 2);
  EXPECT_EQ(r["sas"][2]["detail"], "cancelled");
  EXPECT_EQ(job.cancel("again"), 0u);
}

TEST(SwitchJob, AbandonEndsAtOnceWithWhatIsKnown) {
  ike::TimePoint t0{};
  SwitchJob job({1, 2, 3}, {}, addr("198.51.100.20"), 1.0, t0);
  auto start = [&](std::uint64_t, const IpAddress&) -> Expected<void, std::string> { return {}; };
  job.start_due(t0 + 1500ms, start);
  job.on_event(event(ike::EventKind::kSwitchSucceeded, 1, "switched"));
  job.abandon("mobiked is stopping");
  ASSERT_TRUE(job.done());
  auto r = job.result(t0 + 2s);
  EXPECT_EQ(r["switched"], 1);
  EXPECT_EQ(r["failed"], 1);       // SA 2 was in flight
  EXPECT_EQ(r["not_started"], 1);  // SA 3 was not started
  EXPECT_EQ(r["sas"][1]["detail"], "mobiked is stopping");
  // A late event changes nothing.
  job.on_event(event(ike::EventKind::kSwitchSucceeded, 2, "switched"));
  EXPECT_EQ(job.result(t0 + 2s)["switched"], 1);
}

}  // namespace
}  // namespace mobike::daemon

namespace mobike::daemon {
namespace {

TEST(SwitchJobProgress, CountsEverySaOnceAsItEnds) {
  using namespace std::chrono_literals;
  ike::TimePoint t0{};
  auto ev = [](ike::EventKind kind, std::uint64_t id, std::uint64_t replaces = 0) {
    ike::Event e;
    e.kind = kind;
    e.ike_sa_id = id;
    e.replaces = replaces;
    return e;
  };
  // 5 SAs at 1/s, one skipped from the start.
  SwitchJob job({1, 2, 3, 4, 5}, {{9, "not usable"}}, IpAddress::parse("198.51.100.20").value(), 1, t0);
  auto p = job.progress(t0);
  EXPECT_EQ(p, (control::Progress{1, 1, 5, 0, 0}));
  auto ok = [](std::uint64_t id, const IpAddress&) -> Expected<void, std::string> {
    if (id == 2) return unexpected(std::string("no switch support"));
    return {};
  };
  job.start_due(t0, ok);  // 1
  EXPECT_EQ(job.progress(t0), (control::Progress{1, 1, 5, 1, 0}));
  job.start_due(t0 + 1s, ok);  // 2 fails at once
  EXPECT_EQ(job.progress(t0 + 1s), (control::Progress{2, 2, 4, 1, 1}));
  job.on_event(ev(ike::EventKind::kSwitchSucceeded, 1));
  job.on_event(ev(ike::EventKind::kSwitchSucceeded, 1));  // twice: counted once
  EXPECT_EQ(job.progress(t0 + 1s), (control::Progress{3, 2, 3, 0, 1}));
  job.start_due(t0 + 2s, ok);                            // 3
  job.on_event(ev(ike::EventKind::kIkeRekeyed, 30, 3));  // goes on as #30: no change in counts
  EXPECT_EQ(job.progress(t0 + 2s), (control::Progress{3, 2, 3, 1, 2}));
  job.on_event(ev(ike::EventKind::kSwitchRefused, 30));
  EXPECT_EQ(job.progress(t0 + 2s), (control::Progress{4, 3, 2, 0, 2}));
  job.start_due(t0 + 3s, ok);              // 4
  EXPECT_EQ(job.cancel("cancelled"), 1u);  // 5 not started
  EXPECT_EQ(job.progress(t0 + 3s), (control::Progress{5, 4, 1, 1, 3}));
  job.abandon("mobiked is stopping");  // 4 failed
  EXPECT_EQ(job.progress(t0 + 4s), (control::Progress{6, 5, 0, 0, 4}));
  EXPECT_TRUE(job.done());
}

}  // namespace
}  // namespace mobike::daemon
