// XfrmChildSas against a scripted kernel: which messages go out, in which order, and
// what happens when the kernel refuses one (rollback, the MIGRATE fallback).
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <linux/xfrm.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "platform/xfrm.h"
#include "platform/xfrm_messages.h"

namespace mobike::platform {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }
IpPrefix prefix(const char* text) { return *IpPrefix::parse(text); }

std::uint16_t type_of(const Bytes& m) {
  std::uint16_t t;
  std::memcpy(&t, &m[4], 2);
  return t;
}

class FakeKernel : public XfrmTransport {
 public:
  std::vector<Bytes> sent;
  // Index of the message among all sent so far.
  std::function<Expected<void, SysError>(const Bytes&, std::size_t)> on_request;
  std::function<Expected<Bytes, SysError>(const Bytes&)> on_query;
  std::function<Expected<std::vector<Bytes>, SysError>(const Bytes&)> on_dump;

  Expected<void, SysError> request(ByteView m) override {
    sent.emplace_back(m.begin(), m.end());
    if (on_request) return on_request(sent.back(), sent.size() - 1);
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
  std::vector<std::uint16_t> types(std::size_t from = 0) const {
    std::vector<std::uint16_t> t;
    for (std::size_t i = from; i < sent.size(); ++i) t.push_back(type_of(sent[i]));
    return t;
  }
};

using Types = std::vector<std::uint16_t>;

wire::TrafficSelector ts4(const char* first, const char* last) {
  return {wire::TsType::kIpv4AddrRange, 0, 0, 65535, ip(first), ip(last)};
}

XfrmChild make_child(std::uint32_t spi_in = 0xc1000001, std::uint32_t spi_out = 0xc2000001) {
  XfrmChild c;
  c.local = {ip("192.0.2.1"), 4500};
  c.remote = {ip("198.51.100.10"), 4500};
  c.spi_in = spi_in;
  c.spi_out = spi_out;
  c.local_ts = {ts4("10.1.0.0", "10.1.255.255")};
  c.remote_ts = {ts4("10.2.0.0", "10.2.255.255")};
  c.in = EspTransforms{20, 128, 0, false, Bytes(20, 0xaa), {}};
  c.out = EspTransforms{20, 128, 0, false, Bytes(20, 0xbb), {}};
  return c;
}

XfrmSa sa_for(const XfrmChild& c, bool inbound, std::uint32_t reqid) {
  XfrmSa sa;
  sa.local = c.local;
  sa.remote = c.remote;
  sa.spi = inbound ? c.spi_in : c.spi_out;
  sa.inbound = inbound;
  sa.reqid = reqid;
  sa.transforms = inbound ? c.in : c.out;
  sa.udp_encap = c.udp_encap;
  sa.lifetime = c.lifetime;
  sa.replay_window = c.replay_window;
  return sa;
}

Bytes new_sa(const XfrmSa& sa, const SaCarryOver* carry = nullptr) {
  auto m = build_sa_add(sa, SaRequest::kNew, carry);
  EXPECT_TRUE(m);
  return m ? *m : Bytes{};
}

const XfrmSelector kOutSel{prefix("10.1.0.0/16"), prefix("10.2.0.0/16")};
const XfrmSelector kInSel{prefix("10.2.0.0/16"), prefix("10.1.0.0/16")};

XfrmPolicy policy(XfrmDir dir, const XfrmChild& c, std::uint32_t reqid) {
  bool out = dir == XfrmDir::kOut;
  const XfrmSelector& sel = out ? kOutSel : kInSel;
  return XfrmPolicy{sel,
                    dir,
                    out ? c.local.address : c.remote.address,
                    out ? c.remote.address : c.local.address,
                    reqid,
                    default_priority(sel)};
}

// What the kernel would answer to GETSA for `sa`: the same layout as NEWSA, with the
// counters the kernel keeps in curlft.
Bytes kernel_sa(const XfrmSa& sa, const SaUsage& usage,
                const std::optional<SaReplayState>& replay) {
  SaCarryOver carry;
  carry.replay = replay;
  Bytes m = new_sa(sa, &carry);
  xfrm_lifetime_cur cur{usage.bytes, usage.packets, usage.add_time, usage.use_time};
  std::memcpy(m.data() + 16 + offsetof(xfrm_usersa_info, curlft), &cur, sizeof cur);
  return m;
}

// The (dst, spi) a GETSA asks for.
std::pair<IpAddress, std::uint32_t> get_target(const Bytes& m) {
  xfrm_usersa_id id;
  std::memcpy(&id, m.data() + 16, sizeof id);
  auto addr = *IpAddress::from_bytes(
      ByteView(reinterpret_cast<const std::uint8_t*>(&id.daddr), id.family == AF_INET ? 4 : 16));
  return {addr, ntohl(id.spi)};
}

TEST(XfrmChildSas, InstallsBothSasThenOutInFwdPolicies) {
  FakeKernel k;
  XfrmChildSas dp(k);
  XfrmChild c = make_child();
  ASSERT_TRUE(dp.install(1, c));
  ASSERT_EQ(k.sent.size(), 5u);
  EXPECT_EQ(k.sent[0], new_sa(sa_for(c, true, 1)));
  EXPECT_EQ(k.sent[1], new_sa(sa_for(c, false, 1)));
  EXPECT_EQ(k.sent[2], build_policy_add(policy(XfrmDir::kOut, c, 1)));
  EXPECT_EQ(k.sent[3], build_policy_add(policy(XfrmDir::kIn, c, 1)));
  EXPECT_EQ(k.sent[4], build_policy_add(policy(XfrmDir::kFwd, c, 1)));
  EXPECT_TRUE(dp.contains(1));
  EXPECT_EQ(dp.reqid(1), 1u);
  EXPECT_EQ(dp.policies().size(), 3u);
}

TEST(XfrmChildSas, ReceiveOnlyInstallAddsTheOutboundSaWhenActivated) {
  FakeKernel k;
  XfrmChildSas dp(k);
  XfrmChild c = make_child();
  ASSERT_TRUE(dp.install(1, c, /*outbound=*/false));
  ASSERT_EQ(k.sent.size(), 4u);
  EXPECT_EQ(k.sent[0], new_sa(sa_for(c, true, 1)));
  EXPECT_EQ(k.sent[1], build_policy_add(policy(XfrmDir::kOut, c, 1)));
  EXPECT_FALSE(dp.outbound_active(1));
  // Nothing to count on an SA that has not sent: usage() asks for the inbound SA only.
  k.on_query = [&](const Bytes&) -> Expected<Bytes, SysError> {
    return kernel_sa(sa_for(c, true, 1), SaUsage{100, 2, 0, 0}, std::nullopt);
  };
  auto u = dp.usage(1);
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_EQ(u->in.packets, 2u);
  EXPECT_EQ(u->out.packets, 0u);
  EXPECT_EQ(k.sent.size(), 5u);

  ASSERT_TRUE(dp.activate_outbound(1));
  ASSERT_EQ(k.sent.size(), 6u);
  EXPECT_EQ(k.sent[5], new_sa(sa_for(c, false, 1)));
  EXPECT_TRUE(dp.outbound_active(1));
  ASSERT_TRUE(dp.activate_outbound(1));  // once only
  EXPECT_EQ(k.sent.size(), 6u);
}

TEST(XfrmChildSas, ReceiveOnlyChildIsRemovedWithoutItsOutboundSa) {
  FakeKernel k;
  XfrmChildSas dp(k);
  XfrmChild c = make_child();
  ASSERT_TRUE(dp.install(1, c, /*outbound=*/false));
  ASSERT_TRUE(dp.remove(1));
  // Two SA deletions would include the outbound SA that was never added.
  EXPECT_EQ(k.types(4), (Types{XFRM_MSG_DELSA, XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY}));
  EXPECT_FALSE(dp.contains(1));
}

TEST(XfrmChildSas, FailedOutboundSaRemovesTheInboundOne) {
  FakeKernel k;
  k.on_request = [](const Bytes&, std::size_t i) -> Expected<void, SysError> {
    if (i == 1)
      return unexpected(
          SysError{EPROTONOSUPPORT, "XFRM_MSG_NEWSA (kernel: Requested type not found)"});
    return {};
  };
  XfrmChildSas dp(k);
  XfrmChild c = make_child();
  auto r = dp.install(1, c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EPROTONOSUPPORT);
  EXPECT_NE(r.error().context.find("outbound SA spi 0xc2000001"), std::string::npos)
      << r.error().context;
  EXPECT_NE(r.error().context.find("Requested type not found"), std::string::npos);
  EXPECT_EQ(k.types(), (Types{XFRM_MSG_NEWSA, XFRM_MSG_NEWSA, XFRM_MSG_DELSA}));
  EXPECT_EQ(k.sent[2], build_sa_delete(c.remote.address, c.local.address, c.spi_in));
  EXPECT_FALSE(dp.contains(1));
  EXPECT_TRUE(dp.policies().empty());
}

TEST(XfrmChildSas, FailedPolicyRollsBackEverythingThisCallInstalled) {
  FakeKernel k;
  k.on_request = [](const Bytes&, std::size_t i) -> Expected<void, SysError> {
    if (i == 3) return unexpected(SysError{ENOBUFS, "XFRM_MSG_NEWPOLICY"});
    return {};
  };
  XfrmChildSas dp(k);
  XfrmChild c = make_child();
  auto r = dp.install(1, c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ENOBUFS);
  EXPECT_EQ(k.types(3),
            (Types{XFRM_MSG_NEWPOLICY, XFRM_MSG_DELPOLICY, XFRM_MSG_DELSA, XFRM_MSG_DELSA}));
  EXPECT_EQ(k.sent[4], build_policy_delete(kOutSel, XfrmDir::kOut));
  EXPECT_FALSE(dp.contains(1));
  EXPECT_TRUE(dp.policies().empty());
}

TEST(XfrmChildSas, BadKeysAreRefusedBeforeTheKernelIsTouched) {
  FakeKernel k;
  XfrmChildSas dp(k);
  XfrmChild c = make_child();
  c.out.encr_key.resize(16);  // salt missing
  auto r = dp.install(1, c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EINVAL);
  EXPECT_TRUE(k.sent.empty());
}

TEST(XfrmChildSas, RekeyedChildSharesReqidAndPolicies) {
  FakeKernel k;
  XfrmChildSas dp(k);
  XfrmChild old_child = make_child();
  XfrmChild new_child = make_child(0xc1000002, 0xc2000002);
  ASSERT_TRUE(dp.install(1, old_child));
  ASSERT_TRUE(dp.install(2, new_child));
  EXPECT_EQ(dp.reqid(2), dp.reqid(1));
  // Only the new SAs: the policies with this reqid already cover them.
  EXPECT_EQ(k.types(5), (Types{XFRM_MSG_NEWSA, XFRM_MSG_NEWSA}));

  ASSERT_TRUE(dp.remove(1));
  EXPECT_EQ(k.types(7), (Types{XFRM_MSG_DELSA, XFRM_MSG_DELSA}))
      << "policies still used by child 2";
  EXPECT_EQ(dp.policies().size(), 3u);

  ASSERT_TRUE(dp.remove(2));
  EXPECT_EQ(k.types(9), (Types{XFRM_MSG_DELSA, XFRM_MSG_DELSA, XFRM_MSG_DELPOLICY,
                               XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY}));
  EXPECT_TRUE(dp.policies().empty());
}

TEST(XfrmChildSas, DifferentSelectorsGetDifferentReqids) {
  FakeKernel k;
  XfrmChildSas dp(k, 100);
  XfrmChild a = make_child();
  XfrmChild b = make_child(0xc1000002, 0xc2000002);
  b.remote_ts = {ts4("10.3.0.0", "10.3.255.255")};
  ASSERT_TRUE(dp.install(1, a));
  ASSERT_TRUE(dp.install(2, b));
  EXPECT_EQ(dp.reqid(1), 100u);
  EXPECT_EQ(dp.reqid(2), 101u);
  EXPECT_EQ(dp.policies().size(), 6u);
}

TEST(XfrmChildSas, RemoveToleratesExpiredSasAndReportsRealFailures) {
  FakeKernel k;
  XfrmChildSas dp(k);
  ASSERT_TRUE(dp.install(1, make_child()));
  ASSERT_TRUE(dp.install(2, make_child(0xc1000002, 0xc2000002)));
  std::size_t before = k.sent.size();
  k.on_request = [](const Bytes& m, std::size_t) -> Expected<void, SysError> {
    if (type_of(m) == XFRM_MSG_DELSA) return unexpected(SysError{ESRCH, "XFRM_MSG_DELSA"});
    return {};
  };
  EXPECT_TRUE(dp.remove(1)) << "an SA the kernel already expired is not an error";

  k.on_request = [](const Bytes& m, std::size_t) -> Expected<void, SysError> {
    if (type_of(m) == XFRM_MSG_DELSA) return unexpected(SysError{EPERM, "XFRM_MSG_DELSA"});
    return {};
  };
  auto r = dp.remove(2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EPERM);
  // It carried on: the policies went too, and the child is forgotten.
  EXPECT_EQ(k.types(before + 2), (Types{XFRM_MSG_DELSA, XFRM_MSG_DELSA, XFRM_MSG_DELPOLICY,
                                        XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY}));
  EXPECT_FALSE(dp.contains(2));
  EXPECT_EQ(dp.remove(2).error().code, ENOENT);
}

// --- address updates

struct Moved {
  XfrmChild before, after;
};

Moved moved_child(bool encap_before, bool encap_after) {
  Moved m;
  m.before = make_child();
  m.before.udp_encap = encap_before;
  m.after = m.before;
  m.after.local = {ip("192.0.2.99"), 4500};
  m.after.remote = {ip("198.51.100.10"), 31337};
  m.after.udp_encap = encap_after;
  return m;
}

TEST(XfrmChildSas, UpdateMigratesPoliciesAndTheirSas) {
  FakeKernel k;
  XfrmChildSas dp(k);
  Moved m = moved_child(false, true);
  ASSERT_TRUE(dp.install(1, m.before));
  std::size_t before = k.sent.size();
  // After MIGRATE the kernel has the SAs at their new addresses.
  k.on_query = [&](const Bytes& q) -> Expected<Bytes, SysError> {
    auto [dst, spi] = get_target(q);
    bool inbound = spi == m.after.spi_in;
    XfrmSa sa = sa_for(m.after, inbound, 1);
    if (dst != sa.dst().address) return unexpected(SysError{ESRCH, "XFRM_MSG_GETSA"});
    return kernel_sa(sa, {}, std::nullopt);
  };
  auto r = dp.update_addresses(1, m.after.local, m.after.remote, true);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->policies_migrated, 3u);
  EXPECT_EQ(r->policies_replaced, 0u);
  EXPECT_EQ(r->sas_reinstalled, 0u);
  EXPECT_FALSE(r->migrate_error);
  ASSERT_EQ(k.types(before), (Types{XFRM_MSG_MIGRATE, XFRM_MSG_MIGRATE, XFRM_MSG_MIGRATE,
                                    XFRM_MSG_GETSA, XFRM_MSG_GETSA}));
  XfrmMigration out{ip("192.0.2.1"), ip("198.51.100.10"), ip("192.0.2.99"), ip("198.51.100.10"), 1};
  XfrmMigration in{ip("198.51.100.10"), ip("192.0.2.1"), ip("198.51.100.10"), ip("192.0.2.99"), 1};
  EXPECT_EQ(k.sent[before], build_migrate(kOutSel, XfrmDir::kOut, out, EncapPorts{4500, 31337}));
  EXPECT_EQ(k.sent[before + 1], build_migrate(kInSel, XfrmDir::kIn, in, EncapPorts{31337, 4500}));
  EXPECT_EQ(k.sent[before + 2], build_migrate(kInSel, XfrmDir::kFwd, in, EncapPorts{31337, 4500}));
  for (const XfrmPolicy& p : dp.policies())
    EXPECT_TRUE(p.tunnel_src == ip("192.0.2.99") || p.tunnel_dst == ip("192.0.2.99"));
}

// A kernel that only knows the SAs where they were installed (MIGRATE refused).
struct OldPlaceKernel {
  Moved m;
  SaUsage usage{5000, 50, 1700000000, 1700000005};
  SaReplayState out_replay{0x777, 0, 0, 0, 32, {0}, false};
  SaReplayState in_replay{0, 0x666, 0, 0, 32, {0xffff}, false};

  Expected<Bytes, SysError> answer(const Bytes& q) const {
    auto [dst, spi] = get_target(q);
    bool inbound = spi == m.before.spi_in;
    XfrmSa sa = sa_for(m.before, inbound, 1);
    if (dst != sa.dst().address) return unexpected(SysError{ESRCH, "XFRM_MSG_GETSA"});
    return kernel_sa(sa, usage, inbound ? in_replay : out_replay);
  }
};

TEST(XfrmChildSas, RefusedMigrateFallsBackToPolicyUpdateAndSaReinstall) {
  FakeKernel k;
  XfrmChildSas dp(k);
  OldPlaceKernel kernel{moved_child(false, true)};
  const Moved& m = kernel.m;
  ASSERT_TRUE(dp.install(1, m.before));
  std::size_t before = k.sent.size();
  k.on_request = [](const Bytes& msg, std::size_t) -> Expected<void, SysError> {
    if (type_of(msg) == XFRM_MSG_MIGRATE)
      return unexpected(SysError{ENOPROTOOPT, "XFRM_MSG_MIGRATE"});
    return {};
  };
  k.on_query = [&](const Bytes& q) { return kernel.answer(q); };

  auto r = dp.update_addresses(1, m.after.local, m.after.remote, true);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->policies_migrated, 0u);
  EXPECT_EQ(r->policies_replaced, 3u);
  EXPECT_EQ(r->sas_reinstalled, 2u);
  ASSERT_TRUE(r->migrate_error);
  EXPECT_EQ(r->migrate_error->code, ENOPROTOOPT);
  // One MIGRATE attempt only: ENOPROTOOPT means the kernel lacks it altogether.
  ASSERT_EQ(k.types(before),
            (Types{XFRM_MSG_MIGRATE, XFRM_MSG_UPDPOLICY, XFRM_MSG_UPDPOLICY, XFRM_MSG_UPDPOLICY,
                   // inbound SA: not at the new address, found at the old, re-added first
                   // (its destination changes), then the old one deleted
                   XFRM_MSG_GETSA, XFRM_MSG_GETSA, XFRM_MSG_NEWSA, XFRM_MSG_DELSA,
                   // outbound SA: same destination, so the old one goes first
                   XFRM_MSG_GETSA, XFRM_MSG_DELSA, XFRM_MSG_NEWSA}));
  EXPECT_EQ(k.sent[before + 1], build_policy_add(policy(XfrmDir::kOut, m.after, 1), true));

  // The re-created SAs carry the kernel's counters: the peer would drop packets with
  // restarted sequence numbers as replays.
  SaCarryOver in_carry{kernel.in_replay, kernel.usage};
  SaCarryOver out_carry{kernel.out_replay, kernel.usage};
  EXPECT_EQ(k.sent[before + 6], new_sa(sa_for(m.after, true, 1), &in_carry));
  EXPECT_EQ(k.sent[before + 7],
            build_sa_delete(m.before.remote.address, m.before.local.address, m.before.spi_in));
  EXPECT_EQ(k.sent[before + 9],
            build_sa_delete(m.before.local.address, m.before.remote.address, m.before.spi_out));
  EXPECT_EQ(k.sent[before + 10], new_sa(sa_for(m.after, false, 1), &out_carry));

  // Moving back does not try MIGRATE again.
  std::size_t second = k.sent.size();
  const XfrmChild original = m.before;
  kernel.m.before = m.after;  // where the fake kernel has the SAs now
  auto r2 = dp.update_addresses(1, original.local, original.remote, true);
  ASSERT_TRUE(r2) << r2.error().message();
  EXPECT_EQ(r2->policies_replaced, 3u);
  EXPECT_EQ(r2->sas_reinstalled, 2u);
  for (auto t : k.types(second)) EXPECT_NE(t, XFRM_MSG_MIGRATE);
}

TEST(XfrmChildSas, MigrateNotTriedWhenEncapsulationIsDropped) {
  FakeKernel k;
  XfrmChildSas dp(k);
  OldPlaceKernel kernel{moved_child(true, false)};
  ASSERT_TRUE(dp.install(1, kernel.m.before));
  std::size_t before = k.sent.size();
  k.on_query = [&](const Bytes& q) { return kernel.answer(q); };
  auto r = dp.update_addresses(1, kernel.m.after.local, kernel.m.after.remote, false);
  ASSERT_TRUE(r) << r.error().message();
  for (auto t : k.types(before)) EXPECT_NE(t, XFRM_MSG_MIGRATE);
  EXPECT_EQ(r->sas_reinstalled, 2u);
  // The re-added SAs have no XFRMA_ENCAP.
  for (std::size_t i = before; i < k.sent.size(); ++i) {
    if (type_of(k.sent[i]) != XFRM_MSG_NEWSA) continue;
    auto info = parse_sa(k.sent[i]);
    ASSERT_TRUE(info);
    EXPECT_FALSE(info->encap_sport);
  }
}

TEST(XfrmChildSas, NewNatPortOnlyUpdatesTheSasInPlace) {
  FakeKernel k;
  XfrmChildSas dp(k);
  XfrmChild c = make_child();
  c.udp_encap = true;
  ASSERT_TRUE(dp.install(1, c));
  std::size_t before = k.sent.size();
  k.on_query = [&](const Bytes& q) -> Expected<Bytes, SysError> {
    auto [dst, spi] = get_target(q);
    return kernel_sa(sa_for(c, spi == c.spi_in, 1), {}, std::nullopt);
  };
  Endpoint rebound{c.remote.address, 40000};
  auto r = dp.update_addresses(1, c.local, rebound, true);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->sas_updated, 2u);
  EXPECT_EQ(r->policies_migrated + r->policies_replaced, 0u)
      << "the tunnel addresses did not change";
  EXPECT_EQ(k.types(before),
            (Types{XFRM_MSG_GETSA, XFRM_MSG_UPDSA, XFRM_MSG_GETSA, XFRM_MSG_UPDSA}));
  XfrmChild after = c;
  after.remote = rebound;
  auto upd = build_sa_add(sa_for(after, true, 1), SaRequest::kUpdate);
  ASSERT_TRUE(upd);
  EXPECT_EQ(k.sent[before + 1], *upd);
}

TEST(XfrmChildSas, UpdateFailsWhenTheSaIsGone) {
  FakeKernel k;
  XfrmChildSas dp(k);
  Moved m = moved_child(false, false);
  ASSERT_TRUE(dp.install(1, m.before));
  // MIGRATE succeeds for the policies but the kernel has no SA anywhere (expired).
  auto r = dp.update_addresses(1, m.after.local, m.after.remote, false);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ESRCH);
  EXPECT_NE(r.error().context.find("inbound SA"), std::string::npos) << r.error().context;
}

TEST(XfrmChildSas, UsageReadsBothSas) {
  FakeKernel k;
  XfrmChildSas dp(k);
  XfrmChild c = make_child();
  ASSERT_TRUE(dp.install(1, c));
  k.on_query = [&](const Bytes& q) -> Expected<Bytes, SysError> {
    auto [dst, spi] = get_target(q);
    bool inbound = spi == c.spi_in;
    return kernel_sa(sa_for(c, inbound, 1),
                     inbound ? SaUsage{100, 1, 10, 11} : SaUsage{200, 2, 10, 12}, std::nullopt);
  };
  auto u = dp.usage(1);
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_EQ(u->in, (SaUsage{100, 1, 10, 11}));
  EXPECT_EQ(u->out, (SaUsage{200, 2, 10, 12}));
  EXPECT_EQ(dp.usage(9).error().code, ENOENT);
}

TEST(XfrmChildSas, RemoveAllEmptiesTheKernelState) {
  FakeKernel k;
  XfrmChildSas dp(k);
  ASSERT_TRUE(dp.install(1, make_child()));
  XfrmChild other = make_child(0xc1000009, 0xc2000009);
  other.local_ts = {ts4("10.5.0.0", "10.5.0.255")};
  ASSERT_TRUE(dp.install(2, other));
  std::size_t before = k.sent.size();
  ASSERT_TRUE(dp.remove_all());
  std::size_t dels = 0;
  for (auto t : k.types(before)) dels += (t == XFRM_MSG_DELSA || t == XFRM_MSG_DELPOLICY);
  EXPECT_EQ(dels, 4u + 6u);
  EXPECT_FALSE(dp.contains(1));
  EXPECT_FALSE(dp.contains(2));
  EXPECT_TRUE(dp.policies().empty());
}

}  // namespace
}  // namespace mobike::platform

namespace mobike::platform {
namespace {

// The kernel's per-SA drop counters, written where a GETSA answer carries them.
Bytes with_stats(Bytes m, const SaStats& st) {
  xfrm_stats k{st.replay_window, st.replay, st.integrity_failed};
  std::memcpy(m.data() + 16 + offsetof(xfrm_usersa_info, stats), &k, sizeof k);
  return m;
}

TEST(XfrmChildSas, UsageOfAllChildSasComesFromOneDumpFilteredToOurs) {
  FakeKernel k;
  XfrmChildSas dp(k);
  const XfrmChild a = make_child(), b = make_child(0xc1000002, 0xc2000002);
  ASSERT_TRUE(dp.install(1, a));
  ASSERT_TRUE(dp.install(2, b));
  // Another daemon's SA with one of our SPIs but another destination, and one of ours
  // (b's outbound) the kernel already expired.
  XfrmChild other = make_child(0xc1000001, 0xd2000001);
  other.local.address = ip("192.0.2.99");
  k.on_dump = [&](const Bytes&) -> Expected<std::vector<Bytes>, SysError> {
    return std::vector<Bytes>{
        with_stats(kernel_sa(sa_for(a, true, 1), SaUsage{840, 10, 1, 2}, std::nullopt), SaStats{1, 2, 3}),
        kernel_sa(sa_for(a, false, 1), SaUsage{1260, 15, 1, 2}, std::nullopt),
        kernel_sa(sa_for(other, true, 7), SaUsage{99999, 999, 1, 2}, std::nullopt),
        kernel_sa(sa_for(b, true, 1), SaUsage{84, 1, 1, 2}, std::nullopt)};
  };
  const std::size_t before = k.sent.size();
  auto all = dp.usage_all();
  ASSERT_TRUE(all) << all.error().message();
  EXPECT_EQ(k.sent.size(), before + 1);  // one request, however many SAs
  EXPECT_EQ(k.sent.back(), build_sa_dump());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(all->at(1).in, (SaUsage{840, 10, 1, 2}));
  EXPECT_EQ(all->at(1).out, (SaUsage{1260, 15, 1, 2}));
  EXPECT_EQ(all->at(1).in_stats, (SaStats{1, 2, 3}));
  EXPECT_EQ(all->at(2).in, (SaUsage{84, 1, 1, 2}));
  EXPECT_EQ(all->at(2).out, SaUsage{});

  k.on_dump = [](const Bytes&) -> Expected<std::vector<Bytes>, SysError> {
    return unexpected(SysError{ENOBUFS, "XFRM_MSG_GETSA"});
  };
  EXPECT_FALSE(dp.usage_all());

  // Nothing installed: the kernel is not asked.
  XfrmChildSas empty(k);
  const std::size_t n = k.sent.size();
  auto none = empty.usage_all();
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(k.sent.size(), n);
}

TEST(XfrmChildSas, RemoveReadsEachSasCountersRightBeforeDeletingIt) {
  FakeKernel k;
  XfrmChildSas dp(k);
  const XfrmChild c = make_child();
  ASSERT_TRUE(dp.install(1, c));
  bool out_gone = false;
  k.on_query = [&](const Bytes& q) -> Expected<Bytes, SysError> {
    const bool inbound = get_target(q).second == c.spi_in;
    if (!inbound && out_gone) return unexpected(SysError{ESRCH, "XFRM_MSG_GETSA"});
    return with_stats(kernel_sa(sa_for(c, inbound, 1), inbound ? SaUsage{100, 2, 1, 2} : SaUsage{300, 4, 1, 2},
                                std::nullopt),
                      SaStats{0, inbound ? 5u : 0u, 0});
  };
  const std::size_t before = k.sent.size();
  XfrmChildUsage last;
  std::vector<XfrmSaRef> gone;
  ASSERT_TRUE(dp.remove(1, &last, &gone));
  EXPECT_EQ(k.types(before), (Types{XFRM_MSG_GETSA, XFRM_MSG_DELSA, XFRM_MSG_GETSA, XFRM_MSG_DELSA,
                                    XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY}));
  EXPECT_EQ(last.in, (SaUsage{100, 2, 1, 2}));
  EXPECT_EQ(last.out, (SaUsage{300, 4, 1, 2}));
  EXPECT_EQ(last.in_stats.replay, 5u);
  EXPECT_TRUE(gone.empty());

  // An SA the kernel expired (hard) before the delete: nothing read, reported as gone.
  ASSERT_TRUE(dp.install(2, c));
  out_gone = true;
  XfrmChildUsage last2;
  ASSERT_TRUE(dp.remove(2, &last2, &gone));
  EXPECT_EQ(last2.in, (SaUsage{100, 2, 1, 2}));
  EXPECT_EQ(last2.out, SaUsage{});
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].child_id, 2u);
  EXPECT_EQ(gone[0].dst, c.remote.address);
  EXPECT_EQ(gone[0].spi, c.spi_out);
  EXPECT_FALSE(gone[0].inbound);

  // Without `last`: no GETSA at all.
  ASSERT_TRUE(dp.install(3, c));
  const std::size_t n = k.sent.size();
  ASSERT_TRUE(dp.remove(3));
  EXPECT_EQ(k.types(n), (Types{XFRM_MSG_DELSA, XFRM_MSG_DELSA, XFRM_MSG_DELPOLICY, XFRM_MSG_DELPOLICY,
                              XFRM_MSG_DELPOLICY}));
}

TEST(XfrmChildSas, FindSaTellsTheDirection) {
  FakeKernel k;
  XfrmChildSas dp(k);
  const XfrmChild c = make_child();
  ASSERT_TRUE(dp.install(4, c));
  auto in = dp.find_sa(c.local.address, c.spi_in);
  ASSERT_TRUE(in);
  EXPECT_EQ(in->child_id, 4u);
  EXPECT_TRUE(in->inbound);
  auto out = dp.find_sa(c.remote.address, c.spi_out);
  ASSERT_TRUE(out);
  EXPECT_FALSE(out->inbound);
  EXPECT_FALSE(dp.find_sa(c.remote.address, c.spi_in));
}

}  // namespace
}  // namespace mobike::platform
