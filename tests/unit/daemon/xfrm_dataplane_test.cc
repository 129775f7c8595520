// XfrmDataplane against a scripted kernel: the netlink requests each DataplaneOp
// turns into, and kernel refusals ending up in stats() instead of escaping apply().
#include "daemon/xfrm_dataplane.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "temp_dir.h"
#include "platform/xfrm_messages.h"

namespace mobike::daemon {
namespace {

using platform::SysError;
using platform::XfrmDir;
using Types = std::vector<std::uint16_t>;

IpAddress ip(const char* text) { return *IpAddress::parse(text); }
IpPrefix prefix(const char* text) { return *IpPrefix::parse(text); }

std::uint16_t type_of(const Bytes& m) {
  std::uint16_t t;
  std::memcpy(&t, &m[4], 2);
  return t;
}

// Records every request; answers as scripted (default: success, and ESRCH to GETSA).
class FakeKernel : public platform::XfrmTransport {
 public:
  std::vector<Bytes> sent;
  std::function<Expected<void, SysError>(const Bytes&)> on_request;
  std::function<Expected<Bytes, SysError>(const Bytes&)> on_query;
  std::function<Expected<std::vector<Bytes>, SysError>(const Bytes&)> on_dump;

  Expected<void, SysError> request(ByteView m) override {
    sent.emplace_back(m.begin(), m.end());
    if (on_request) return on_request(sent.back());
    return {};
  }
  Expected<Bytes, SysError> query(ByteView m) override {
    sent.emplace_back(m.begin(), m.end());
    if (on_query) return on_query(sent.back());
    return unexpected(SysError{ESRCH, "XFRM_MSG_GETSA"});
  }
  Expected<std::vector<Bytes>, SysError> dump(ByteView m) override {
    sent.emplace_back(m.begin(), m.end());
    if (on_dump) return on_dump(sent.back());
    return std::vector<Bytes>{};
  }
  Types types(std::size_t from = 0) const {
    Types t;
    for (std::size_t i = from; i < sent.size(); ++i) t.push_back(type_of(sent[i]));
    return t;
  }
};

wire::TrafficSelector host(const char* a) { return {wire::TsType::kIpv4AddrRange, 0, 0, 65535, ip(a), ip(a)}; }

Bytes pattern(std::size_t n, std::uint8_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i);
  return b;
}

// A Child SA behind a NAT as the engine reports it: AES-CBC + HMAC-SHA2-256 with ESN,
// so that every key field has its own value to be mapped.
ike::DataplaneOp install_op(std::uint64_t child, std::uint32_t spi_in, std::uint32_t spi_out) {
  ike::DataplaneOp op;
  op.kind = ike::DataplaneOp::Kind::kInstall;
  op.ike_sa_id = 7;
  op.child_sa_id = child;
  op.spi_in = spi_in;
  op.spi_out = spi_out;
  op.local = {ip("10.1.0.2"), 4500};
  op.remote = {ip("198.51.100.10"), 4500};
  op.udp_encap = true;
  op.local_ts = {host("192.0.2.1")};
  op.remote_ts = {host("203.0.113.1")};
  op.keys.encr_id = 12;
  op.keys.encr_key_bits = 128;
  op.keys.integ_id = 12;
  op.keys.esn = true;
  op.keys.encr_in = pattern(16, 0x10);
  op.keys.integ_in = pattern(32, 0x30);
  op.keys.encr_out = pattern(16, 0x80);
  op.keys.integ_out = pattern(32, 0xa0);
  return op;
}

ike::DataplaneOp simple_op(ike::DataplaneOp::Kind kind, const ike::DataplaneOp& installed) {
  ike::DataplaneOp op;
  op.kind = kind;
  op.ike_sa_id = installed.ike_sa_id;
  op.child_sa_id = installed.child_sa_id;
  op.spi_in = installed.spi_in;
  op.spi_out = installed.spi_out;
  op.local = installed.local;
  op.remote = installed.remote;
  op.udp_encap = installed.udp_encap;
  return op;
}

// The SA the kernel must get for one direction, written out field by field rather than
// through XfrmDataplane::child_of.
platform::XfrmSa expected_sa(const ike::DataplaneOp& op, bool inbound, std::uint32_t reqid,
                             std::uint32_t window) {
  platform::XfrmSa sa;
  sa.local = op.local;
  sa.remote = op.remote;
  sa.spi = inbound ? op.spi_in : op.spi_out;
  sa.inbound = inbound;
  sa.reqid = reqid;
  sa.transforms = {12, 128, 12, true, inbound ? op.keys.encr_in : op.keys.encr_out,
                   inbound ? op.keys.integ_in : op.keys.integ_out};
  sa.udp_encap = true;
  sa.replay_window = window;
  return sa;
}

Bytes new_sa(const platform::XfrmSa& sa, const platform::SaCarryOver* carry = nullptr) {
  auto m = platform::build_sa_add(sa, platform::SaRequest::kNew, carry);
  EXPECT_TRUE(m);
  return m ? *m : Bytes{};
}

const platform::XfrmSelector kOutSel{prefix("192.0.2.1/32"), prefix("203.0.113.1/32")};
const platform::XfrmSelector kInSel{prefix("203.0.113.1/32"), prefix("192.0.2.1/32")};

Bytes policy_add(XfrmDir dir, const Endpoint& local, const Endpoint& remote, std::uint32_t reqid) {
  bool out = dir == XfrmDir::kOut;
  const auto& sel = out ? kOutSel : kInSel;
  return platform::build_policy_add(platform::XfrmPolicy{sel, dir, out ? local.address : remote.address,
                                                         out ? remote.address : local.address, reqid,
                                                         platform::default_priority(sel)});
}

// A GETSA answer: the SA as installed, with the kernel's counters in curlft and the
// replay bitmap the kernel always reports.
Bytes kernel_sa(const platform::XfrmSa& sa, const platform::SaUsage& usage) {
  platform::SaCarryOver carry;
  platform::SaReplayState replay;
  replay.esn_format = true;
  replay.replay_window = sa.replay_window;
  replay.bitmap.assign((sa.replay_window + 31) / 32, 0);
  carry.replay = replay;
  Bytes m = new_sa(sa, &carry);
  xfrm_lifetime_cur cur{usage.bytes, usage.packets, usage.add_time, usage.use_time};
  std::memcpy(m.data() + 16 + offsetof(xfrm_usersa_info, curlft), &cur, sizeof cur);
  return m;
}

std::uint32_t spi_asked(const Bytes& getsa) {
  xfrm_usersa_id id;
  std::memcpy(&id, getsa.data() + 16, sizeof id);
  return ntohl(id.spi);
}

// The fields of a NEWSA request the kernel keys on, read straight from the wire
// layout (not through parse_sa, which wants a GETSA reply's full replay bitmap).
struct SentSa {
  IpAddress src, dst;
  std::uint32_t spi = 0, reqid = 0;
  std::optional<std::pair<std::uint16_t, std::uint16_t>> encap;
  std::optional<std::uint32_t> replay_window;
  Bytes crypt_key;
};

SentSa decode_newsa(const Bytes& m) {
  SentSa out;
  xfrm_usersa_info info;
  std::memcpy(&info, m.data() + 16, sizeof info);
  std::size_t alen = info.family == AF_INET ? 4 : 16;
  out.src = *IpAddress::from_bytes(ByteView(reinterpret_cast<const std::uint8_t*>(&info.saddr), alen));
  out.dst = *IpAddress::from_bytes(ByteView(reinterpret_cast<const std::uint8_t*>(&info.id.daddr), alen));
  out.spi = ntohl(info.id.spi);
  out.reqid = info.reqid;
  for (std::size_t off = 16 + NLMSG_ALIGN(sizeof info); off + 4 <= m.size();) {
    std::uint16_t len, type;
    std::memcpy(&len, &m[off], 2);
    std::memcpy(&type, &m[off + 2], 2);
    if (len < 4 || off + len > m.size()) break;
    const std::uint8_t* payload = &m[off + 4];
    if (type == XFRMA_ENCAP) {
      xfrm_encap_tmpl e;
      std::memcpy(&e, payload, sizeof e);
      out.encap = std::pair{ntohs(e.encap_sport), ntohs(e.encap_dport)};
    } else if (type == XFRMA_REPLAY_ESN_VAL) {
      xfrm_replay_state_esn e;
      std::memcpy(&e, payload, sizeof e);
      out.replay_window = e.replay_window;
    } else if (type == XFRMA_ALG_CRYPT) {
      xfrm_algo a;
      std::memcpy(&a, payload, sizeof a);
      out.crypt_key.assign(payload + sizeof a, payload + sizeof a + a.alg_key_len / 8);
    }
    off += NLA_ALIGN(len);
  }
  return out;
}

DaemonConfig config(std::uint32_t replay_window = 1024) {
  DaemonConfig c;
  c.dataplane = DataplaneKind::kXfrm;
  c.replay_window = replay_window;
  return c;
}

TEST(XfrmDataplane, InstallSendsBothSasThenOutInFwdPolicies) {
  FakeKernel k;
  XfrmDataplane dp(k, config());
  auto op = install_op(3, 0xc1000001, 0xc2000001);
  dp.apply(op);

  ASSERT_EQ(k.types(), (Types{XFRM_MSG_NEWSA, XFRM_MSG_NEWSA, XFRM_MSG_NEWPOLICY, XFRM_MSG_NEWPOLICY,
                              XFRM_MSG_NEWPOLICY}));
  EXPECT_EQ(k.sent[0], new_sa(expected_sa(op, true, 1, 1024)));
  EXPECT_EQ(k.sent[1], new_sa(expected_sa(op, false, 1, 1024)));
  EXPECT_EQ(k.sent[2], policy_add(XfrmDir::kOut, op.local, op.remote, 1));
  EXPECT_EQ(k.sent[3], policy_add(XfrmDir::kIn, op.local, op.remote, 1));
  EXPECT_EQ(k.sent[4], policy_add(XfrmDir::kFwd, op.local, op.remote, 1));

  // The key fields as the kernel reads them: direction, SPI, each direction's own key,
  // NAT-T ports, window.
  SentSa in = decode_newsa(k.sent[0]), out = decode_newsa(k.sent[1]);
  EXPECT_EQ(in.spi, 0xc1000001u);
  EXPECT_EQ(in.src, ip("198.51.100.10"));
  EXPECT_EQ(in.dst, ip("10.1.0.2"));
  EXPECT_EQ(in.crypt_key, op.keys.encr_in);
  EXPECT_EQ(in.reqid, 1u);
  EXPECT_EQ(out.spi, 0xc2000001u);
  EXPECT_EQ(out.src, ip("10.1.0.2"));
  EXPECT_EQ(out.dst, ip("198.51.100.10"));
  EXPECT_EQ(out.crypt_key, op.keys.encr_out);
  EXPECT_EQ(out.encap, (std::pair<std::uint16_t, std::uint16_t>{4500, 4500}));
  EXPECT_EQ(in.replay_window, 1024u);

  auto s = dp.stats();
  EXPECT_EQ(s["backend"], "xfrm");
  EXPECT_EQ(s["installs"], 1);
  EXPECT_EQ(s["child_sas"], 1);
  EXPECT_EQ(s["policies"], 3);
  EXPECT_EQ(s["errors"], 0);
  EXPECT_TRUE(s["last_error"].is_null());
}

TEST(XfrmDataplane, LimitsBecomeKernelLifetimesAndExpiresReachTheEngineOncePerKind) {
  FakeKernel k;
  XfrmDataplane dp(k, config());
  auto op = install_op(3, 0xc1000001, 0xc2000001);
  op.limits = ike::ChildLimits{1000, 1100, 10, 20, 3300, 3960};
  dp.apply(op);
  ASSERT_GE(k.sent.size(), 2u);
  for (int i : {0, 1}) {
    xfrm_usersa_info info;
    std::memcpy(&info, k.sent[static_cast<std::size_t>(i)].data() + 16, sizeof info);
    EXPECT_EQ(info.lft.soft_byte_limit, 1000u);
    EXPECT_EQ(info.lft.hard_byte_limit, 1100u);
    EXPECT_EQ(info.lft.soft_packet_limit, 10u);
    EXPECT_EQ(info.lft.hard_packet_limit, 20u);
    EXPECT_EQ(info.lft.soft_add_expires_seconds, 3300u);
    EXPECT_EQ(info.lft.hard_add_expires_seconds, 3960u);
  }
  // Without limits the kernel's are infinite.
  FakeKernel k2;
  XfrmDataplane dp2(k2, config());
  dp2.apply(install_op(4, 0xc1000002, 0xc2000002));
  xfrm_usersa_info info;
  std::memcpy(&info, k2.sent.at(0).data() + 16, sizeof info);
  EXPECT_EQ(info.lft.soft_byte_limit, XFRM_INF);
  EXPECT_EQ(info.lft.hard_packet_limit, XFRM_INF);
  EXPECT_EQ(info.lft.hard_add_expires_seconds, 0u);

  auto expire = [&](const char* dst, std::uint32_t spi, bool hard, std::uint64_t bytes, std::uint64_t packets) {
    platform::XfrmExpire e;
    e.dst = ip(dst);
    e.src = ip(dst[0] == '1' && dst[1] == '0' ? "198.51.100.10" : "10.1.0.2");
    e.spi = spi;
    e.hard = hard;
    e.lifetime = {1000, 1100, 10, 20, 3300, 3960};
    e.usage = {bytes, packets, 0, 0};
    auto back = platform::parse_expire(platform::build_expire(e));  // as the socket reads it
    EXPECT_TRUE(back);
    return *back;
  };
  platform::XfrmEvents ev;
  ev.expires = {expire("10.1.0.2", 0xc1000001, false, 1000, 4),       // our inbound SA: soft, bytes
                expire("198.51.100.10", 0xc2000001, false, 1001, 5),  // its outbound SA too
                expire("10.1.0.2", 0, true, 0, 0),                    // an acquire's placeholder
                expire("10.1.0.2", 0xc2000001, true, 0, 20)};         // right SPI, wrong SA
  dp.on_events(ev);
  EXPECT_EQ(dp.take_expires(), (std::vector<ChildExpire>{{3, false, ike::ExpireCause::kBytes}}));
  EXPECT_TRUE(dp.take_expires().empty());
  ev.expires = {expire("198.51.100.10", 0xc2000001, true, 900, 20)};
  dp.on_events(ev);
  EXPECT_EQ(dp.take_expires(), (std::vector<ChildExpire>{{3, true, ike::ExpireCause::kPackets}}));
  EXPECT_EQ(dp.stats()["expires"]["soft"], 2);
  EXPECT_EQ(dp.stats()["expires"]["hard"], 1);
}

TEST(XfrmDataplane, TrapPoliciesServeTheChildSaAndReportAcquires) {
  FakeKernel k;
  XfrmDataplane dp(k, config());
  auto op = install_op(3, 0xc1000001, 0xc2000001);
  TrapSpec trap{op.local.address, op.remote.address, op.local_ts, op.remote_ts};
  ASSERT_TRUE(dp.install_trap(9, trap));
  // The Child SA's policies, template and reqid included, without SAs.
  ASSERT_EQ(k.types(), (Types{XFRM_MSG_NEWPOLICY, XFRM_MSG_NEWPOLICY, XFRM_MSG_NEWPOLICY}));
  EXPECT_EQ(k.sent[0], policy_add(XfrmDir::kOut, op.local, op.remote, 1));
  EXPECT_EQ(k.sent[1], policy_add(XfrmDir::kIn, op.local, op.remote, 1));
  EXPECT_EQ(k.sent[2], policy_add(XfrmDir::kFwd, op.local, op.remote, 1));
  EXPECT_FALSE(dp.install_trap(9, trap));  // one trap per id

  // Traffic hits it: the kernel's acquire names the out policy's selector.
  platform::XfrmAcquire a;
  a.src = op.local.address;
  a.dst = op.remote.address;
  a.flow = kOutSel;
  a.policy = kOutSel;
  platform::XfrmEvents ev;
  ev.acquires = {*platform::parse_acquire(platform::build_acquire(a)), a};
  a.policy = kInSel;  // not one of the trap's out policies
  ev.acquires.push_back(a);
  dp.on_events(ev);
  EXPECT_EQ(dp.take_acquires(), (std::vector<std::uint64_t>{9}));
  EXPECT_TRUE(dp.take_acquires().empty());
  EXPECT_EQ(dp.stats()["acquires"], 2);
  EXPECT_EQ(dp.stats()["acquires_unmatched"], 1);

  // The Child SA it brings: its SAs under the trap's policies, nothing else.
  std::size_t from = k.sent.size();
  dp.apply(op);
  EXPECT_EQ(k.types(from), (Types{XFRM_MSG_NEWSA, XFRM_MSG_NEWSA}));
  EXPECT_EQ(k.sent[from], new_sa(expected_sa(op, true, 1, 1024)));
  // It goes: the trap's policies stay.
  from = k.sent.size();
  dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, op));
  EXPECT_EQ(k.types(from), (Types{XFRM_MSG_GETSA, XFRM_MSG_DELSA, XFRM_MSG_GETSA, XFRM_MSG_DELSA}));
  EXPECT_EQ(dp.stats()["traps"], 1);
  from = k.sent.size();
  dp.remove_trap(9);
  EXPECT_EQ(k.types(from), (Types{XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY}));
  EXPECT_EQ(dp.stats()["traps"], 0);
}

TEST(XfrmDataplane, ReplayWindowIsCappedAtTheKernelsMaximum) {
  FakeKernel k;
  XfrmDataplane dp(k, config(1u << 20));
  auto op = install_op(1, 0xc1000001, 0xc2000001);
  dp.apply(op);
  ASSERT_GE(k.sent.size(), 1u);
  EXPECT_EQ(k.sent[0], new_sa(expected_sa(op, true, 1, XFRMA_REPLAY_ESN_MAX)));
  EXPECT_EQ(decode_newsa(k.sent[0]).replay_window, std::uint32_t{XFRMA_REPLAY_ESN_MAX});
  EXPECT_EQ(dp.stats()["installs"], 1);
}

TEST(XfrmDataplane, DeleteRemovesSasThenPolicies) {
  FakeKernel k;
  XfrmDataplane dp(k, config());
  auto op = install_op(3, 0xc1000001, 0xc2000001);
  dp.apply(op);
  std::size_t before = k.sent.size();
  dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, op));
  // Each SA's counters are read right before its delete: the kernel forgets them.
  EXPECT_EQ(k.types(before), (Types{XFRM_MSG_GETSA, XFRM_MSG_DELSA, XFRM_MSG_GETSA, XFRM_MSG_DELSA,
                                    XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY}));
  EXPECT_EQ(k.sent[before], platform::build_sa_get(ip("10.1.0.2"), ip("198.51.100.10"), 0xc2000001));
  EXPECT_EQ(k.sent[before + 1], platform::build_sa_delete(ip("10.1.0.2"), ip("198.51.100.10"), 0xc2000001));
  EXPECT_EQ(k.sent[before + 3], platform::build_sa_delete(ip("198.51.100.10"), ip("10.1.0.2"), 0xc1000001));
  EXPECT_EQ(k.sent[before + 4], platform::build_policy_delete(kOutSel, XfrmDir::kOut));
  auto s = dp.stats();
  EXPECT_EQ(s["removals"], 1);
  EXPECT_EQ(s["child_sas"], 0);
  EXPECT_EQ(s["policies"], 0);
  EXPECT_FALSE(dp.traffic(3));
}

TEST(XfrmDataplane, RekeyedChildSharesPoliciesUntilTheLastOneGoes) {
  FakeKernel k;
  XfrmDataplane dp(k, config());
  auto old_op = install_op(3, 0xc1000001, 0xc2000001);
  auto new_op = install_op(4, 0xc1000002, 0xc2000002);
  dp.apply(old_op);
  std::size_t before = k.sent.size();
  dp.apply(new_op);
  // Same selectors: same reqid, so the policies already there cover the new SAs.
  EXPECT_EQ(k.types(before), (Types{XFRM_MSG_NEWSA, XFRM_MSG_NEWSA}));
  EXPECT_EQ(k.sent[before], new_sa(expected_sa(new_op, true, 1, 1024)));
  before = k.sent.size();
  dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, old_op));
  EXPECT_EQ(k.types(before), (Types{XFRM_MSG_GETSA, XFRM_MSG_DELSA, XFRM_MSG_GETSA, XFRM_MSG_DELSA}));
  EXPECT_EQ(dp.stats()["policies"], 3);
  before = k.sent.size();
  dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, new_op));
  EXPECT_EQ(k.types(before), (Types{XFRM_MSG_GETSA, XFRM_MSG_DELSA, XFRM_MSG_GETSA, XFRM_MSG_DELSA,
                                    XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY}));
}

TEST(XfrmDataplane, UpdateAddressesMigratesPoliciesAndSas) {
  FakeKernel k;
  XfrmDataplane dp(k, config());
  auto op = install_op(3, 0xc1000001, 0xc2000001);
  dp.apply(op);
  auto moved = simple_op(ike::DataplaneOp::Kind::kUpdateAddresses, op);
  moved.local = {ip("10.1.0.3"), 4500};
  moved.remote = {ip("198.51.100.10"), 31337};
  // After MIGRATE the kernel has the SAs at the new addresses and ports.
  auto at_new = op;
  at_new.local = moved.local;
  at_new.remote = moved.remote;
  k.on_query = [&](const Bytes& q) -> Expected<Bytes, SysError> {
    bool inbound = spi_asked(q) == op.spi_in;
    return kernel_sa(expected_sa(at_new, inbound, 1, 1024), {});
  };
  std::size_t before = k.sent.size();
  dp.apply(moved);
  ASSERT_EQ(k.types(before),
            (Types{XFRM_MSG_MIGRATE, XFRM_MSG_MIGRATE, XFRM_MSG_MIGRATE, XFRM_MSG_GETSA, XFRM_MSG_GETSA}));
  platform::XfrmMigration out{ip("10.1.0.2"), ip("198.51.100.10"), ip("10.1.0.3"), ip("198.51.100.10"), 1};
  EXPECT_EQ(k.sent[before], platform::build_migrate(kOutSel, XfrmDir::kOut, out, platform::EncapPorts{4500, 31337}));
  auto s = dp.stats();
  EXPECT_EQ(s["updates"], 1);
  EXPECT_EQ(s["errors"], 0);

  // A later delete finds the SAs where they went.
  before = k.sent.size();
  dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, moved));
  ASSERT_GE(k.sent.size(), before + 2);
  EXPECT_EQ(k.sent[before], platform::build_sa_get(ip("10.1.0.3"), ip("198.51.100.10"), 0xc2000001));
  EXPECT_EQ(k.sent[before + 1], platform::build_sa_delete(ip("10.1.0.3"), ip("198.51.100.10"), 0xc2000001));
}

TEST(XfrmDataplane, RefusedInstallIsCountedWithTheKernelsMessage) {
  FakeKernel k;
  k.on_request = [](const Bytes& m) -> Expected<void, SysError> {
    if (type_of(m) == XFRM_MSG_NEWSA)
      return unexpected(SysError{EPROTONOSUPPORT, "XFRM_MSG_NEWSA (kernel: Requested type not found)"});
    return {};
  };
  XfrmDataplane dp(k, config());
  auto op = install_op(3, 0xc1000001, 0xc2000001);
  EXPECT_NO_THROW(dp.apply(op));
  // The first SA was refused: nothing else may follow, in particular no policy that
  // would black-hole the selectors.
  EXPECT_EQ(k.types(), (Types{XFRM_MSG_NEWSA}));
  auto s = dp.stats();
  EXPECT_EQ(s["installs"], 0);
  EXPECT_EQ(s["install_errors"], 1);
  EXPECT_EQ(s["errors"], 1);
  EXPECT_EQ(s["child_sas"], 0);
  ASSERT_TRUE(s["last_error"].is_object()) << s.dump();
  EXPECT_EQ(s["last_error"]["errno"], EPROTONOSUPPORT);
  EXPECT_EQ(s["last_error"]["name"], "EPROTONOSUPPORT");
  const std::string msg = s["last_error"]["message"];
  EXPECT_NE(msg.find("Requested type not found"), std::string::npos) << msg;
  EXPECT_NE(msg.find("child 3"), std::string::npos) << msg;
  EXPECT_FALSE(dp.traffic(3));

  // What was never installed is neither removed nor moved, and that is no new error.
  std::size_t before = k.sent.size();
  dp.apply(simple_op(ike::DataplaneOp::Kind::kUpdateAddresses, op));
  dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, op));
  EXPECT_EQ(k.sent.size(), before);
  EXPECT_EQ(dp.stats()["errors"], 1);
  EXPECT_EQ(dp.stats()["removals"], 0);
}

TEST(XfrmDataplane, RefusedRemoveAndUpdateAreCounted) {
  FakeKernel k;
  XfrmDataplane dp(k, config());
  auto op = install_op(3, 0xc1000001, 0xc2000001);
  dp.apply(op);
  k.on_request = [](const Bytes& m) -> Expected<void, SysError> {
    if (type_of(m) == XFRM_MSG_MIGRATE || type_of(m) == XFRM_MSG_UPDPOLICY)
      return unexpected(SysError{ENOBUFS, "XFRM_MSG_MIGRATE"});
    if (type_of(m) == XFRM_MSG_DELSA) return unexpected(SysError{EPERM, "XFRM_MSG_DELSA"});
    return {};
  };
  auto moved = simple_op(ike::DataplaneOp::Kind::kUpdateAddresses, op);
  moved.local = {ip("10.1.0.3"), 4500};
  EXPECT_NO_THROW(dp.apply(moved));
  EXPECT_EQ(dp.stats()["update_errors"], 1);
  EXPECT_EQ(dp.stats()["last_error"]["errno"], ENOBUFS);

  EXPECT_NO_THROW(dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, op)));
  auto s = dp.stats();
  EXPECT_EQ(s["remove_errors"], 1);
  EXPECT_EQ(s["errors"], 2);
  EXPECT_EQ(s["last_error"]["name"], "EPERM");
  // Out of the table regardless: a repeated delete does not try again.
  EXPECT_EQ(s["child_sas"], 0);
}

TEST(XfrmDataplane, TrafficComesFromTheKernelsCounters) {
  FakeKernel k;
  XfrmDataplane dp(k, config());
  auto op = install_op(3, 0xc1000001, 0xc2000001);
  dp.apply(op);
  k.on_query = [&](const Bytes& q) -> Expected<Bytes, SysError> {
    bool inbound = spi_asked(q) == op.spi_in;
    return kernel_sa(expected_sa(op, inbound, 1, 1024), inbound ? platform::SaUsage{840, 10, 1, 2}
                                                                : platform::SaUsage{1260, 15, 1, 2});
  };
  auto t = dp.traffic(3);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->bytes_in, 840u);
  EXPECT_EQ(t->packets_in, 10u);
  EXPECT_EQ(t->bytes_out, 1260u);
  EXPECT_EQ(t->packets_out, 15u);
  EXPECT_TRUE(t->drops.empty());

  // The SAs vanished from the kernel (someone ran `ip xfrm state flush`): no numbers.
  k.on_query = nullptr;
  EXPECT_FALSE(dp.traffic(3));
  EXPECT_EQ(dp.stats()["usage_errors"], 1);
  EXPECT_FALSE(dp.traffic(99));
}

TEST(XfrmDataplane, UdpEspReachingTheDaemonIsCountedAndDropped) {
  FakeKernel k;
  XfrmDataplane dp(k, config());
  std::uint8_t packet[16] = {0xc1, 0, 0, 1};
  dp.on_udp_esp(packet, {ip("10.1.0.2"), 4500}, {ip("198.51.100.10"), 4500});
  EXPECT_EQ(dp.stats()["esp_udp_dropped"], 1);
  EXPECT_TRUE(k.sent.empty());
}

TEST(XfrmDataplane, DestructionRemovesWhatIsLeft) {
  FakeKernel k;
  {
    XfrmDataplane dp(k, config());
    dp.apply(install_op(3, 0xc1000001, 0xc2000001));
  }
  EXPECT_EQ(k.types(5), (Types{XFRM_MSG_DELSA, XFRM_MSG_DELSA, XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY,
                               XFRM_MSG_DELPOLICY}));
}

TEST(XfrmDataplane, SocketPreparationNamesTheFailingStep) {
  auto r = prepare_ike_socket_for_xfrm(-1, AddressFamily::kV4, true);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("exempt the IKE socket"), std::string::npos) << r.error();
}

// A kernel that keeps the counters of every SA installed through it (by SPI), answers
// GETSA and the dump from them, and forgets an SA with its DELSA (or when a test erases
// it: a hard expire), as the real one does. knows() tells it the SAs of a Child SA.
class CountingKernel : public FakeKernel {
 public:
  std::map<std::uint32_t, platform::XfrmSa> known;
  std::set<std::uint32_t> sas;  // in the kernel
  std::map<std::uint32_t, platform::SaUsage> usage;
  std::map<std::uint32_t, platform::SaStats> drops;
  std::size_t dumps = 0;

  void knows(const ike::DataplaneOp& op) {
    known[op.spi_in] = expected_sa(op, true, 1, 1024);
    known[op.spi_out] = expected_sa(op, false, 1, 1024);
  }

  CountingKernel() {
    on_request = [this](const Bytes& m) -> Expected<void, SysError> {
      if (type_of(m) == XFRM_MSG_NEWSA) {
        xfrm_usersa_info info;
        std::memcpy(&info, m.data() + 16, sizeof info);
        EXPECT_TRUE(known.count(ntohl(info.id.spi))) << "knows() was not told";
        sas.insert(ntohl(info.id.spi));
      } else if (type_of(m) == XFRM_MSG_DELSA) {
        if (!sas.erase(spi_asked(m))) return unexpected(SysError{ESRCH, "XFRM_MSG_DELSA"});
      }
      return {};
    };
    on_query = [this](const Bytes& q) -> Expected<Bytes, SysError> {
      if (!sas.count(spi_asked(q))) return unexpected(SysError{ESRCH, "XFRM_MSG_GETSA"});
      return answer(spi_asked(q));
    };
    on_dump = [this](const Bytes& q) -> Expected<std::vector<Bytes>, SysError> {
      EXPECT_EQ(q, platform::build_sa_dump());
      ++dumps;
      std::vector<Bytes> out;
      for (auto spi : sas) out.push_back(answer(spi));
      return out;
    };
  }
  Bytes answer(std::uint32_t spi) {
    Bytes m = kernel_sa(known.at(spi), usage[spi]);
    const platform::SaStats d = drops[spi];
    xfrm_stats st{d.replay_window, d.replay, d.integrity_failed};
    std::memcpy(m.data() + 16 + offsetof(xfrm_usersa_info, stats), &st, sizeof st);
    return m;
  }
};

platform::XfrmExpire hard_expire(const ike::DataplaneOp& op, bool inbound, platform::SaUsage usage) {
  platform::XfrmExpire e;
  e.src = inbound ? op.remote.address : op.local.address;
  e.dst = inbound ? op.local.address : op.remote.address;
  e.spi = inbound ? op.spi_in : op.spi_out;
  e.hard = true;
  e.usage = usage;
  auto back = platform::parse_expire(platform::build_expire(e));  // as the socket reads it
  EXPECT_TRUE(back);
  return *back;
}

struct Counts {
  std::uint64_t packets_in, bytes_in, packets_out, bytes_out;
  friend bool operator==(const Counts&, const Counts&) = default;
  friend std::ostream& operator<<(std::ostream& o, const Counts& c) {
    return o << "in " << c.packets_in << "p/" << c.bytes_in << "B, out " << c.packets_out << "p/" << c.bytes_out
             << "B";
  }
};

Counts counts(const XfrmDataplane& dp) {
  auto t = dp.totals();
  EXPECT_TRUE(t);
  if (!t) return {};
  return {t->packets_in, t->bytes_in, t->packets_out, t->bytes_out};
}

TEST(XfrmDataplaneTotals, LiveSasAreReadWithOneDumpPerScrape) {
  CountingKernel k;
  XfrmDataplane dp(k, config());
  dp.set_xfrm_stat_path("/nonexistent/xfrm_stat");
  EXPECT_EQ(counts(dp), (Counts{0, 0, 0, 0}));
  EXPECT_EQ(k.dumps, 0u);  // nothing installed: nothing to ask
  auto a = install_op(3, 0xc1000001, 0xc2000001);
  auto b = install_op(5, 0xc1000005, 0xc2000005);
  b.local_ts = {host("192.0.2.5")};  // other selectors: a Child SA of its own
  k.knows(a);
  k.knows(b);
  dp.apply(a);
  dp.apply(b);
  k.usage[a.spi_in] = {840, 10, 0, 0};
  k.usage[a.spi_out] = {1260, 15, 0, 0};
  k.usage[b.spi_in] = {84, 1, 0, 0};
  // Someone else's SA in the same namespace is not ours to count.
  k.known[0xdddd0001] = k.known.at(a.spi_in);
  k.known[0xdddd0001].spi = 0xdddd0001;
  k.sas.insert(0xdddd0001);
  k.usage[0xdddd0001] = {99999, 999, 0, 0};
  const std::size_t sent = k.sent.size();
  EXPECT_EQ(counts(dp), (Counts{11, 924, 15, 1260}));
  EXPECT_EQ(k.dumps, 1u);
  EXPECT_EQ(k.sent.size(), sent + 1);  // one request for all SAs, no GETSA per SA
}

TEST(XfrmDataplaneTotals, DeletedChildSaKeepsItsTraffic) {
  CountingKernel k;
  XfrmDataplane dp(k, config());
  dp.set_xfrm_stat_path("/nonexistent/xfrm_stat");
  auto op = install_op(3, 0xc1000001, 0xc2000001);
  k.knows(op);
  dp.apply(op);
  k.usage[op.spi_in] = {840, 10, 0, 0};
  k.usage[op.spi_out] = {1260, 15, 0, 0};
  EXPECT_EQ(counts(dp), (Counts{10, 840, 15, 1260}));
  // More traffic after the last scrape, right before the delete: counted too.
  k.usage[op.spi_in] = {924, 11, 0, 0};
  dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, op));
  EXPECT_TRUE(k.sas.empty());  // the kernel forgot them
  EXPECT_EQ(counts(dp), (Counts{11, 924, 15, 1260}));
  EXPECT_EQ(counts(dp), (Counts{11, 924, 15, 1260}));  // and stays so
  // A repeated delete adds nothing.
  dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, op));
  EXPECT_EQ(counts(dp), (Counts{11, 924, 15, 1260}));
}

TEST(XfrmDataplaneTotals, RekeyAddsTheOldChildSasTrafficToTheNewOnes) {
  CountingKernel k;
  XfrmDataplane dp(k, config());
  dp.set_xfrm_stat_path("/nonexistent/xfrm_stat");
  auto old_op = install_op(3, 0xc1000001, 0xc2000001);
  auto new_op = install_op(4, 0xc1000002, 0xc2000002);
  k.knows(old_op);
  k.knows(new_op);
  dp.apply(old_op);
  k.usage[old_op.spi_in] = {1000, 10, 0, 0};
  k.usage[old_op.spi_out] = {1500, 15, 0, 0};
  dp.apply(new_op);  // the rekey: both live for a moment
  k.usage[new_op.spi_in] = {200, 2, 0, 0};
  EXPECT_EQ(counts(dp), (Counts{12, 1200, 15, 1500}));
  dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, old_op));
  k.usage[new_op.spi_out] = {300, 3, 0, 0};
  EXPECT_EQ(counts(dp), (Counts{12, 1200, 18, 1800}));
  k.usage[new_op.spi_in] = {500, 5, 0, 0};
  EXPECT_EQ(counts(dp), (Counts{15, 1500, 18, 1800}));
  // The new one is rekeyed in turn and goes too: everything stays.
  dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, new_op));
  EXPECT_EQ(counts(dp), (Counts{15, 1500, 18, 1800}));
}

TEST(XfrmDataplaneTotals, HardExpiredSasKeepTheCountersTheirExpireCarried) {
  CountingKernel k;
  XfrmDataplane dp(k, config());
  dp.set_xfrm_stat_path("/nonexistent/xfrm_stat");
  auto op = install_op(3, 0xc1000001, 0xc2000001);
  k.knows(op);
  dp.apply(op);
  k.usage[op.spi_in] = {100, 5, 0, 0};
  k.usage[op.spi_out] = {40, 2, 0, 0};
  // The kernel deletes the inbound SA at its hard limit and says so with its counters.
  k.sas.erase(op.spi_in);
  platform::XfrmEvents ev;
  ev.expires = {hard_expire(op, true, {120, 6, 0, 0})};
  dp.on_events(ev);
  EXPECT_EQ(counts(dp), (Counts{6, 120, 2, 40}));
  // mobiked's delete finds the inbound SA gone: counted once, from the expire.
  dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, op));
  EXPECT_EQ(counts(dp), (Counts{6, 120, 2, 40}));

  // The expire arrives only after mobiked deleted the Child SA (it found the SA gone).
  auto late = install_op(5, 0xc1000005, 0xc2000005);
  k.knows(late);
  dp.apply(late);
  k.usage[late.spi_in] = {10, 1, 0, 0};
  k.sas.erase(late.spi_out);
  dp.apply(simple_op(ike::DataplaneOp::Kind::kDelete, late));
  EXPECT_EQ(counts(dp), (Counts{7, 130, 2, 40}));
  ev.expires = {hard_expire(late, false, {70, 3, 0, 0})};
  dp.on_events(ev);
  EXPECT_EQ(counts(dp), (Counts{7, 130, 5, 110}));
  dp.on_events(ev);  // not twice
  EXPECT_EQ(counts(dp), (Counts{7, 130, 5, 110}));
  // A hard expire of an SA that was never ours counts nothing.
  ev.expires = {hard_expire(install_op(9, 0xc1000009, 0xc2000009), true, {1000, 100, 0, 0})};
  dp.on_events(ev);
  EXPECT_EQ(counts(dp), (Counts{7, 130, 5, 110}));
}

TEST(XfrmDataplaneTotals, DropsAreTheKernelsXfrmStatisticsByReason) {
  testing::TempDir dir;
  const std::string path = dir.write("xfrm_stat",
                                     "XfrmInError             \t1\n"
                                     "XfrmInNoStates          \t17\n"
                                     "XfrmInStateProtoError   \t3\n"
                                     "XfrmInStateSeqError     \t4\n"
                                     "XfrmInStateExpired      \t5\n"
                                     "XfrmInNoPols            \t6\n"
                                     "XfrmOutNoStates         \t7\n"
                                     "XfrmOutStateExpired     \t8\n");
  CountingKernel k;
  XfrmDataplane dp(k, config());
  dp.set_xfrm_stat_path(path);
  auto t = dp.totals();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->drops, (std::map<std::string, std::uint64_t>{{"XfrmInError", 1},
                                                             {"unknown SPI", 17},
                                                             {"authentication", 3},
                                                             {"replay", 4},
                                                             {"expired", 13},
                                                             {"XfrmInNoPols", 6},
                                                             {"XfrmOutNoStates", 7}}));
  EXPECT_NE(t->drops_source.find(path), std::string::npos) << t->drops_source;
  EXPECT_NE(t->traffic_source.find("xfrm"), std::string::npos) << t->traffic_source;

  // A kernel without XFRM statistics: traffic still, no drops.
  dp.set_xfrm_stat_path(dir.file("missing"));
  t = dp.totals();
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->drops.empty());
}

TEST(XfrmDataplaneTotals, PerSaDropCountersShowInTheChildsTraffic) {
  CountingKernel k;
  XfrmDataplane dp(k, config());
  auto op = install_op(3, 0xc1000001, 0xc2000001);
  k.knows(op);
  dp.apply(op);
  k.drops[op.spi_in] = {2, 3, 4};  // replay_window, replay, integrity_failed
  auto t = dp.traffic(3);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->drops, (std::map<std::string, std::uint64_t>{{"replay", 5}, {"authentication", 4}}));
}

}  // namespace
}  // namespace mobike::daemon
