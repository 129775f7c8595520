// Helpers for the MOBIKE sim tests: a tap that decrypts every IKE message on the
// simulated wire (with the receiving peer's keys) so that tests can see and drop single
// messages of a flow, a raw INFORMATIONAL task to send hand-made payloads, and counters
// over a host's data-plane operations.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ike/protection.h"
#include "ike/task.h"
#include "ike_pair.h"
#include "mobility/mobike.h"
#include "wire/codec.h"

namespace mobike::sim {

using ike::DataplaneOp;
using wire::ExchangeType;
using wire::NotifyType;

inline std::vector<DataplaneOp> update_ops(const Host& h) {
  std::vector<DataplaneOp> out;
  for (const auto& op : h.dataplane)
    if (op.kind == DataplaneOp::Kind::kUpdateAddresses) out.push_back(op);
  return out;
}

inline std::size_t event_count(const Host& h, EventKind kind, const std::string& detail_part) {
  return static_cast<std::size_t>(std::count_if(h.events.begin(), h.events.end(), [&](const ike::Event& e) {
    return e.kind == kind && e.detail.find(detail_part) != std::string::npos;
  }));
}

// Switches that did not happen: refused by either side, or failed.
inline std::size_t switch_failures(const Host& h) {
  return count_events(h, EventKind::kSwitchRefused) + count_events(h, EventKind::kSwitchFailed);
}

inline bool logged(const Host& h, const std::string& part) {
  return std::any_of(h.log.begin(), h.log.end(), [&](const std::string& l) { return l.find(part) != std::string::npos; });
}

inline mobility::SaView view_of(const Host& h) {
  const ike::IkeSa* sa = only_sa(h);
  if (!sa) {
    ADD_FAILURE() << h.name << " has not exactly one IKE SA";
    return {};
  }
  auto v = mobility::view(*sa);
  if (!v) {
    ADD_FAILURE() << h.name << ": no MOBIKE state";
    return {};
  }
  return *v;
}

inline std::vector<IpAddress> sorted(std::vector<IpAddress> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// One IKE message seen on the wire (after the sender's NAT).
struct Seen {
  ike::TimePoint at{};
  std::string from;
  Endpoint src, dst;
  ExchangeType exchange = ExchangeType::kIkeSaInit;
  bool response = false;
  std::uint32_t mid = 0;
  std::uint64_t spi_i = 0;
  bool opened = false;
  std::vector<wire::Payload> payloads;  // decrypted
  Bytes data;

  bool has(NotifyType t) const { return wire::find_notify(payloads, t) != nullptr; }
  std::size_t count(NotifyType t) const {
    return wire::find_notifies(payloads, static_cast<std::uint16_t>(t)).size();
  }
  bool informational_request() const { return exchange == ExchangeType::kInformational && !response; }
  bool informational_response() const { return exchange == ExchangeType::kInformational && response; }
};

// Records (and optionally drops) every IKE message. Installs itself as the network's
// drop hook: a packet the tap drops is never delivered.
class Tap {
 public:
  explicit Tap(Pair& p) : p_(p) {
    p_.net.drop = [this](const Packet& pk) {
      if (pk.keepalive) return false;
      Recorded r;
      static_cast<Seen&>(r) = decode(pk);
      r.dropped = drop_if && drop_if(r);
      seen.push_back(std::move(r));
      return seen.back().dropped;
    };
  }
  ~Tap() { p_.net.drop = nullptr; }

  struct Recorded : Seen {
    bool dropped = false;
  };
  std::vector<Recorded> seen;
  std::function<bool(const Seen&)> drop_if;

  std::size_t count(const std::function<bool(const Seen&)>& pred) const {
    return static_cast<std::size_t>(std::count_if(seen.begin(), seen.end(), pred));
  }
  std::vector<const Recorded*> all(const std::function<bool(const Seen&)>& pred) const {
    std::vector<const Recorded*> out;
    for (const auto& s : seen)
      if (pred(s)) out.push_back(&s);
    return out;
  }

  // The flows of RFC 4555: UPDATE_SA_ADDRESSES requests of the initiator, their
  // responses, and the responder's return-routability requests (COOKIE2 only) and
  // their responses. Matched by Message ID.
  static bool update_request(const Seen& s) {
    return s.from == "ini" && s.informational_request() && s.has(NotifyType::kUpdateSaAddresses);
  }
  static bool rr_request(const Seen& s) {
    return s.from == "res" && s.informational_request() && s.has(NotifyType::kCookie2) &&
           !s.has(NotifyType::kUpdateSaAddresses);
  }
  bool update_response(const Seen& s) const {
    return s.from == "res" && s.informational_response() && mid_of(update_request, s.mid);
  }
  bool rr_response(const Seen& s) const {
    return s.from == "ini" && s.informational_response() && mid_of(rr_request, s.mid);
  }

 private:
  bool mid_of(bool (*pred)(const Seen&), std::uint32_t mid) const {
    return std::any_of(seen.begin(), seen.end(), [&](const Seen& s) { return pred(s) && s.mid == mid; });
  }

  Seen decode(const Packet& pk) {
    Seen s;
    s.at = p_.net.now();
    s.from = pk.from;
    s.src = pk.src;
    s.dst = pk.dst;
    s.data = pk.data;
    auto m = wire::decode_message(pk.data);
    if (!m) return s;
    s.exchange = m->header.exchange;
    s.response = m->header.is_response();
    s.mid = m->header.message_id;
    s.spi_i = m->header.spi_i;
    if (s.exchange == ExchangeType::kIkeSaInit) {
      s.payloads = m->payloads;
      s.opened = true;
      return s;
    }
    // Opened with the keys of the receiving side (the other host of the pair).
    std::vector<const Host*> receivers;
    if (pk.from != "res") receivers.push_back(p_.res);
    if (pk.from != "ini") receivers.push_back(p_.ini);
    for (const Host* h : receivers)
      h->engine->for_each_ike_sa([&](const ike::IkeSa& sa) {
        if (s.opened || sa.spi_i != m->header.spi_i || sa.spi_r != m->header.spi_r || !sa.crypto.in) return;
        if (auto opened = ike::open_message(sa, *m, pk.data)) {
          s.payloads = std::move(*opened);
          s.opened = true;
        }
      });
    return s;
  }

  Pair& p_;
};

// An INFORMATIONAL request with whatever payloads a test wants to send.
class RawInformational final : public ike::Task {
 public:
  RawInformational(std::vector<wire::Payload> payloads, std::shared_ptr<std::vector<wire::Payload>> answer)
      : payloads_(std::move(payloads)), answer_(std::move(answer)) {}
  ExchangeType exchange() const override { return ExchangeType::kInformational; }
  const char* name() const override { return "TEST_RAW"; }
  std::optional<std::vector<wire::Payload>> build_request(ike::IkeSa&, ike::Services&) override { return payloads_; }
  ike::TaskResult process_response(ike::IkeSa&, ike::Services&, const std::vector<wire::Payload>& in) override {
    if (answer_) *answer_ = in;
    return ike::TaskResult::kDone;
  }

 private:
  std::vector<wire::Payload> payloads_;
  std::shared_ptr<std::vector<wire::Payload>> answer_;
};

inline bool send_raw(Network& net, Host& h, std::vector<wire::Payload> payloads,
                     std::shared_ptr<std::vector<wire::Payload>> answer = nullptr) {
  const ike::IkeSa* sa = only_sa(h);
  if (!sa) return false;
  bool ok = h.engine->with_sa(sa->id, net.now(), [&](ike::IkeSa& s, ike::Services& svc) {
    svc.queue(s, std::make_unique<RawInformational>(std::move(payloads), answer));
    return true;
  });
  net.collect(h);
  return ok;
}

// Connections for the MOBIKE tests: the initiator's "home" to 198.51.100.10 and the
// responder's "gw" for anyone, with short liveness checks on the initiator.
inline ike::ConnectionConfig ini_conn(ike::Duration dpd = ike::Duration(10000)) {
  auto c = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  c.dpd_delay = dpd;
  return c;
}
inline ike::ConnectionConfig res_conn(ike::Duration dpd = ike::Duration(30000)) {
  auto c = psk_connection("gw", "%any", "res@example.test", "ini@example.test");
  c.dpd_delay = dpd;
  return c;
}

inline bool establish(Pair& p, const IpAddress& from) {
  auto id = p.ini->engine->initiate("home", from, p.net.now());
  if (!id) {
    ADD_FAILURE() << id.error();
    return false;
  }
  p.net.collect(*p.ini);
  return p.net.run_until([&] { return p.both_established(); }, ike::Duration(10000));
}

// The SPIs that must survive every move: IKE SPIs and the Child SA's SPIs.
struct Spis {
  std::uint64_t ike_i = 0, ike_r = 0;
  std::uint32_t child_in = 0, child_out = 0;
  friend bool operator==(const Spis&, const Spis&) = default;
};
inline Spis spis_of(const Host& h) {
  const ike::IkeSa* sa = only_sa(h);
  if (!sa || sa->children.size() != 1) {
    ADD_FAILURE() << h.name << ": not exactly one IKE SA with one Child SA";
    return {};
  }
  return {sa->spi_i, sa->spi_r, sa->children[0].spi_in, sa->children[0].spi_out};
}

inline Endpoint ep(const char* a, std::uint16_t port = 4500) { return {ip(a), port}; }

}  // namespace mobike::sim
