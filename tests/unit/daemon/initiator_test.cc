#include "daemon/initiator.h"

#include <gtest/gtest.h>

#include "crypto/random.h"
#include "ike/proposal_string.h"

namespace mobike::daemon {
namespace {

using namespace std::chrono_literals;

IpAddress addr(const char* s) { return IpAddress::parse(s).value(); }

// An engine with one connection to `remote_addrs` and an Initiator around it whose
// lookups, posted work and clock the test drives by hand. Only IPv4 is routable.
struct Harness {
  crypto::SeededRandom random{7};
  ike::Engine engine;
  ike::TimePoint now{};
  std::vector<std::pair<std::string, std::function<void(Initiator::Addresses)>>> lookups;
  std::vector<std::function<void()>> posted;
  std::vector<std::pair<std::uint64_t, std::vector<IpAddress>>> added;  // add_peer_addresses
  Initiator initiator;

  static ike::EngineConfig engine_config() {
    ike::EngineConfig e;
    e.retransmit_timeout = 500ms;
    e.retransmit_tries = 1;
    return e;
  }

  explicit Harness(std::vector<std::string> remote_addrs)
      : engine(engine_config(), random),
        initiator(engine, Initiator::Hooks{
                              .resolve =
                                  [this](const std::string& name, std::function<void(Initiator::Addresses)> done) {
                                    lookups.emplace_back(name, std::move(done));
                                  },
                              .local_for = [](const ike::ConnectionConfig&,
                                              const IpAddress& remote) -> std::optional<IpAddress> {
                                if (remote.is_v4()) return addr("192.0.2.1");
                                return std::nullopt;
                              },
                              .post = [this](std::function<void()> f) { posted.push_back(std::move(f)); },
                              .add_peer_addresses =
                                  [this](std::uint64_t sa, std::vector<IpAddress> a) {
                                    added.emplace_back(sa, std::move(a));
                                    return true;
                                  },
                              .flush = [] {},
                              .now = [this] { return now; },
                          }) {
    ike::ConnectionConfig c;
    c.name = "home";
    c.remote_addrs = std::move(remote_addrs);
    c.local_id = *ike::Identity::parse("client.example.test");
    c.psk = to_bytes("secret");
    c.ike_proposals = *ike::parse_ike_proposals("aes128gcm16-prfsha256-x25519");
    ike::ChildConfig child;
    child.name = "net";
    child.esp_proposals = *ike::parse_esp_proposals("aes128gcm16");
    c.children.push_back(child);
    engine.set_connections({c});
  }

  // Answers the oldest outstanding lookup.
  void answer(Initiator::Addresses a) {
    ASSERT_FALSE(lookups.empty());
    auto done = std::move(lookups.front().second);
    lookups.erase(lookups.begin());
    done(std::move(a));
  }
  // Where the engine sent IKE_SA_INIT requests since the last call.
  std::vector<IpAddress> sent_to() {
    std::vector<IpAddress> out;
    for (const auto& d : engine.take_datagrams()) {
      EXPECT_EQ(d.local.address, addr("192.0.2.1"));
      EXPECT_EQ(d.remote.port, 500);
      if (out.empty() || out.back() != d.remote.address) out.push_back(d.remote.address);
    }
    return out;
  }
  // Lets the current IKE SA retransmit until it gives up, passing the engine's events
  // to the initiator, then runs what it posted.
  std::vector<ike::Event> fail_current() {
    std::vector<ike::Event> all;
    for (int i = 0; i < 10 && all.empty(); ++i) {
      auto t = engine.next_timeout();
      if (!t) break;
      now = *t;
      engine.on_timeout(now);
      for (auto& e : engine.take_events()) {
        initiator.on_event(e);
        all.push_back(e);
      }
    }
    engine.take_datagrams();  // the retransmissions
    for (auto f : std::exchange(posted, {})) f();
    return all;
  }
};

TEST(Initiator, TriesEveryResolvedAddressThenResolvesAgainUntilNothingNewComes) {
  Harness h({"vpn.example.test"});
  std::vector<Expected<std::uint64_t, std::string>> done;
  h.initiator.initiate("home", [&](Expected<std::uint64_t, std::string> r) { done.push_back(r); });
  ASSERT_EQ(h.lookups.size(), 1u);
  EXPECT_EQ(h.lookups[0].first, "vpn.example.test");
  EXPECT_TRUE(done.empty());  // answered once the name is resolved
  EXPECT_TRUE(h.sent_to().empty());

  // The IPv6 address has no local address of its family here: skipped.
  h.answer(std::vector<IpAddress>{addr("198.51.100.10"), addr("2001:db8::10"), addr("198.51.100.20")});
  ASSERT_EQ(done.size(), 1u);
  ASSERT_TRUE(done[0]);
  EXPECT_EQ(h.sent_to(), std::vector<IpAddress>{addr("198.51.100.10")});

  auto events = h.fail_current();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, ike::EventKind::kIkeFailed);
  EXPECT_TRUE(events[0].unanswered);
  EXPECT_EQ(events[0].ike_sa_id, *done[0]);
  EXPECT_EQ(h.sent_to(), std::vector<IpAddress>{addr("198.51.100.20")});
  EXPECT_TRUE(h.lookups.empty());

  // Every address failed: the name is looked up again, and only what is new is tried.
  h.fail_current();
  EXPECT_TRUE(h.sent_to().empty());
  ASSERT_EQ(h.lookups.size(), 1u);
  h.answer(std::vector<IpAddress>{addr("198.51.100.20"), addr("198.51.100.30")});
  EXPECT_EQ(h.sent_to(), std::vector<IpAddress>{addr("198.51.100.30")});

  h.fail_current();
  ASSERT_EQ(h.lookups.size(), 1u);
  h.answer(std::vector<IpAddress>{addr("198.51.100.30"), addr("198.51.100.10")});
  EXPECT_TRUE(h.sent_to().empty());
  EXPECT_EQ(h.initiator.attempts(), 0u);
  EXPECT_EQ(done.size(), 1u);
}

TEST(Initiator, ALookupThatFailsIsReportedToTheCaller) {
  Harness h({"nowhere.example.test"});
  std::vector<Expected<std::uint64_t, std::string>> done;
  h.initiator.initiate("home", [&](Expected<std::uint64_t, std::string> r) { done.push_back(r); });
  h.answer(unexpected(std::string("Name or service not known")));
  ASSERT_EQ(done.size(), 1u);
  ASSERT_FALSE(done[0]);
  EXPECT_EQ(done[0].error(), "cannot resolve nowhere.example.test: Name or service not known");
  EXPECT_EQ(h.initiator.attempts(), 0u);
  EXPECT_TRUE(h.sent_to().empty());
}

TEST(Initiator, LiteralAddressesComeFirstInTheirOrderAndNeedNoLookup) {
  Harness h({"198.51.100.10", "2001:db8::1", "198.51.100.20"});
  std::vector<Expected<std::uint64_t, std::string>> done;
  h.initiator.initiate("home", [&](Expected<std::uint64_t, std::string> r) { done.push_back(r); });
  ASSERT_EQ(done.size(), 1u);  // at once
  ASSERT_TRUE(done[0]);
  EXPECT_EQ(h.sent_to(), std::vector<IpAddress>{addr("198.51.100.10")});
  h.fail_current();
  EXPECT_EQ(h.sent_to(), std::vector<IpAddress>{addr("198.51.100.20")});
  h.fail_current();
  EXPECT_TRUE(h.lookups.empty());
  EXPECT_TRUE(h.sent_to().empty());
  EXPECT_EQ(h.initiator.attempts(), 0u);
}

TEST(Initiator, NamesAndAddressesMixInTheOrderOfRemoteAddrs) {
  Harness h({"vpn.example.test", "198.51.100.99", "backup.example.test"});
  h.initiator.initiate("home", [](Expected<std::uint64_t, std::string>) {});
  ASSERT_EQ(h.lookups.size(), 2u);
  // The second name answers first: the order is still that of remote_addrs.
  auto vpn = std::move(h.lookups[0].second);
  h.lookups.erase(h.lookups.begin());
  h.answer(std::vector<IpAddress>{addr("203.0.113.7"), addr("198.51.100.99")});
  EXPECT_TRUE(h.sent_to().empty());
  vpn(std::vector<IpAddress>{addr("198.51.100.10")});
  EXPECT_EQ(h.sent_to(), std::vector<IpAddress>{addr("198.51.100.10")});
  h.fail_current();
  EXPECT_EQ(h.sent_to(), std::vector<IpAddress>{addr("198.51.100.99")});
  h.fail_current();
  EXPECT_EQ(h.sent_to(), std::vector<IpAddress>{addr("203.0.113.7")});
}

TEST(Initiator, AnyOtherEndOfTheIkeSaEndsTheAttempt) {
  Harness h({"198.51.100.10", "198.51.100.20"});
  std::uint64_t id = 0;
  h.initiator.initiate("home", [&](Expected<std::uint64_t, std::string> r) { id = r.value(); });
  h.sent_to();
  ike::Event e;
  e.kind = ike::EventKind::kIkeFailed;
  e.ike_sa_id = id + 1;  // another SA's failure
  h.initiator.on_event(e);
  EXPECT_EQ(h.initiator.attempts(), 1u);
  e.ike_sa_id = id;  // failed with an answer (authentication, proposals): no other address
  h.initiator.on_event(e);
  EXPECT_EQ(h.initiator.attempts(), 0u);
  EXPECT_TRUE(h.posted.empty());

  Harness g({"198.51.100.10", "198.51.100.20"});
  g.initiator.initiate("home", [&](Expected<std::uint64_t, std::string> r) { id = r.value(); });
  e.kind = ike::EventKind::kIkeEstablished;
  e.ike_sa_id = id;
  g.initiator.on_event(e);
  EXPECT_EQ(g.initiator.attempts(), 0u);
}

TEST(Initiator, UnknownConnectionAndStopAnswerAtOnce) {
  Harness h({"vpn.example.test"});
  std::vector<Expected<std::uint64_t, std::string>> done;
  auto record = [&](Expected<std::uint64_t, std::string> r) { done.push_back(r); };
  h.initiator.initiate("office", record);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].error(), "no connection named 'office'");
  h.initiator.initiate("home", record);
  EXPECT_EQ(done.size(), 1u);
  h.initiator.stop();
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1].error(), "mobiked is stopping");
  h.answer(std::vector<IpAddress>{addr("198.51.100.10")});  // too late: nothing starts
  EXPECT_TRUE(h.sent_to().empty());
}

TEST(Initiator, AnSaWithoutAWorkingPathHasThePeersNamesLookedUpAgain) {
  Harness h({"vpn.example.test", "198.51.100.99"});
  std::uint64_t id = 0;
  h.initiator.initiate("home", [&](Expected<std::uint64_t, std::string> r) { id = r.value(); });
  h.answer(std::vector<IpAddress>{addr("198.51.100.10")});
  ASSERT_NE(id, 0u);
  ike::Event e;
  e.kind = ike::EventKind::kNoPath;
  e.ike_sa_id = id;
  h.initiator.on_event(e);
  EXPECT_TRUE(h.lookups.empty());  // not from inside the batch of events
  for (auto f : std::exchange(h.posted, {})) f();
  ASSERT_EQ(h.lookups.size(), 1u);
  EXPECT_EQ(h.lookups[0].first, "vpn.example.test");
  h.initiator.on_event(e);  // again while the lookup is out: one is enough
  for (auto f : std::exchange(h.posted, {})) f();
  EXPECT_EQ(h.lookups.size(), 1u);
  h.answer(std::vector<IpAddress>{addr("198.51.100.20"), addr("198.51.100.10")});
  ASSERT_EQ(h.added.size(), 1u);
  EXPECT_EQ(h.added[0].first, id);
  EXPECT_EQ(h.added[0].second,
            (std::vector<IpAddress>{addr("198.51.100.20"), addr("198.51.100.10"), addr("198.51.100.99")}));
  EXPECT_EQ(h.sent_to(), std::vector<IpAddress>{addr("198.51.100.10")});  // no new IKE SA for it

  // Without names nothing new can be learnt: no lookup.
  Harness g({"198.51.100.10"});
  g.initiator.initiate("home", [&](Expected<std::uint64_t, std::string> r) { id = r.value(); });
  e.ike_sa_id = id;
  g.initiator.on_event(e);
  for (auto f : std::exchange(g.posted, {})) f();
  EXPECT_TRUE(g.lookups.empty());
  EXPECT_TRUE(g.added.empty());
}

}  // namespace
}  // namespace mobike::daemon
