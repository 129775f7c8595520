#include "platform/xfrm.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/udp.h>
#include <linux/xfrm.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <tuple>
#include <utility>

namespace mobike::platform {
namespace {

// The kernel answers XFRM requests synchronously; this only bounds a lost answer.
constexpr int kReceiveTimeoutSeconds = 5;
// GETSA replies are under 2 KiB (keys, an ESN bitmap of at most 512 octets).
constexpr std::size_t kReceiveBuffer = 16384;

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

SysError with_context(const SysError& e, const std::string& prefix) {
  return SysError{e.code, prefix + ": " + e.context};
}

// --- receive-side callbacks (libmnl wants plain functions)

struct Exchange {
  Bytes* reply = nullptr;  // a query's answer goes here
  std::vector<Bytes>* parts = nullptr;  // a dump's messages go here
  bool done = false;
  int error = 0;
  std::string kernel_message;  // NLMSGERR_ATTR_MSG
};

int on_ext_ack_attr(const nlattr* a, void* data) {
  if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
    static_cast<Exchange*>(data)->kernel_message = mnl_attr_get_str(a);
  return MNL_CB_OK;
}

int on_error(const nlmsghdr* nlh, void* data) {
  auto* ex = static_cast<Exchange*>(data);
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) {
    ex->error = EBADMSG;
    return MNL_CB_ERROR;
  }
  nlmsgerr err;
  std::memcpy(&err, mnl_nlmsg_get_payload(nlh), sizeof err);
  if (err.error == 0) {
    ex->done = true;
    return MNL_CB_STOP;
  }
  ex->error = -err.error;
  if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) != 0) {
    // With NETLINK_CAP_ACK the request is not echoed and the TLVs follow at once; a
    // kernel that ignored the option echoes it in full first.
    unsigned offset = sizeof(nlmsgerr);
    if ((nlh->nlmsg_flags & NLM_F_CAPPED) == 0 && err.msg.nlmsg_len >= sizeof(nlmsghdr))
      offset += err.msg.nlmsg_len - static_cast<unsigned>(sizeof(nlmsghdr));
    if (offset < mnl_nlmsg_get_payload_len(nlh)) mnl_attr_parse(nlh, offset, on_ext_ack_attr, ex);
  }
  return MNL_CB_ERROR;
}

int on_done(const nlmsghdr*, void* data) {
  static_cast<Exchange*>(data)->done = true;
  return MNL_CB_STOP;
}

int on_data(const nlmsghdr* nlh, void* data) {
  auto* ex = static_cast<Exchange*>(data);
  const auto* p = reinterpret_cast<const std::uint8_t*>(nlh);
  if (ex->parts != nullptr) {
    ex->parts->emplace_back(p, p + nlh->nlmsg_len);
    return MNL_CB_OK;  // more follow, up to NLMSG_DONE
  }
  if (ex->reply == nullptr) return MNL_CB_OK;  // not asked for; the ack follows
  ex->reply->assign(p, p + nlh->nlmsg_len);
  ex->done = true;
  return MNL_CB_STOP;
}

bool is_gone(const SysError& e) { return e.code == ESRCH || e.code == ENOENT; }

std::string describe(const Endpoint& local, const Endpoint& remote) {
  return local.to_string() + " <-> " + remote.to_string();
}

std::string ts_key(const std::vector<wire::TrafficSelector>& local,
                   const std::vector<wire::TrafficSelector>& remote) {
  std::string key;
  auto add = [&](const std::vector<wire::TrafficSelector>& list) {
    for (const auto& ts : list) {
      key += std::to_string(static_cast<int>(ts.ts_type)) + "," + std::to_string(ts.ip_protocol) +
             "," + std::to_string(ts.start_port) + "-" + std::to_string(ts.end_port) + "," +
             ts.start_address.to_string() + "-" + ts.end_address.to_string() + ";";
    }
  };
  add(local);
  key += "|";
  add(remote);
  return key;
}

// Outer addresses of a policy's template: out goes local -> remote, in and fwd come in.
std::pair<IpAddress, IpAddress> tunnel_for(XfrmDir dir, const Endpoint& local,
                                           const Endpoint& remote) {
  if (dir == XfrmDir::kOut) return {local.address, remote.address};
  return {remote.address, local.address};
}

// The encapsulation ports of the SA a policy's MIGRATE entry finds.
EncapPorts encap_for(XfrmDir dir, const Endpoint& local, const Endpoint& remote) {
  if (dir == XfrmDir::kOut) return {local.port, remote.port};
  return {remote.port, local.port};
}

auto selector_tuple(const XfrmSelector& s) {
  return std::make_tuple(s.src.address, s.src.length, s.dst.address, s.dst.length, s.proto, s.sport,
                         s.sport_mask, s.dport, s.dport_mask);
}

// Key copies this object held are cleared when it lets go of them, and so are the
// netlink messages that carried them.
void wipe(Bytes& b) {
  if (!b.empty()) explicit_bzero(b.data(), b.size());
}

void wipe_keys(XfrmChild& c) {
  for (Bytes* b : {&c.in.encr_key, &c.in.integ_key, &c.out.encr_key, &c.out.integ_key})
    if (!b->empty()) explicit_bzero(b->data(), b->size());
}

Expected<std::vector<XfrmPolicy>, SysError> policies_for(const XfrmChild& c, std::uint32_t reqid) {
  std::vector<XfrmPolicy> out;
  std::set<std::tuple<decltype(selector_tuple(XfrmSelector{})), int>> seen;
  auto add = [&](const XfrmSelector& sel, XfrmDir dir) {
    if (!seen.insert({selector_tuple(sel), static_cast<int>(dir)}).second) return;
    auto [src, dst] = tunnel_for(dir, c.local, c.remote);
    out.push_back(XfrmPolicy{sel, dir, src, dst, reqid, default_priority(sel)});
  };
  for (const auto& lts : c.local_ts) {
    for (const auto& rts : c.remote_ts) {
      auto outbound = selectors_for(lts, rts);
      if (!outbound) return unexpected(outbound.error());
      auto inbound = selectors_for(rts, lts);
      if (!inbound) return unexpected(inbound.error());
      for (const auto& s : *outbound) add(s, XfrmDir::kOut);
      for (const auto& s : *inbound) {
        add(s, XfrmDir::kIn);
        add(s, XfrmDir::kFwd);  // a gateway forwards decrypted traffic onwards
      }
    }
  }
  if (out.empty())
    return unexpected(
        SysError{EINVAL, "xfrm: no traffic selector pair of one family and protocol"});
  return out;
}

bool same_template(const XfrmPolicy& a, const XfrmPolicy& b) {
  return a.tunnel_src == b.tunnel_src && a.tunnel_dst == b.tunnel_dst && a.reqid == b.reqid &&
         a.priority == b.priority;
}

}  // namespace

// ------------------------------------------------------------------------- sockets

Expected<void, SysError> xfrm_bypass_socket(int fd, AddressFamily family) {
  bool v6 = family == AddressFamily::kV6;
  xfrm_userpolicy_info pol;
  std::memset(&pol, 0, sizeof pol);
  pol.action = XFRM_POLICY_ALLOW;
  pol.sel.family = v6 ? AF_INET6 : AF_INET;
  for (std::uint8_t dir : {std::uint8_t{XFRM_POLICY_IN}, std::uint8_t{XFRM_POLICY_OUT}}) {
    pol.dir = dir;
    if (::setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_XFRM_POLICY : IP_XFRM_POLICY,
                     &pol, sizeof pol) != 0)
      return unexpected(SysError{errno, std::string("setsockopt ") +
                                            (v6 ? "IPV6_XFRM_POLICY" : "IP_XFRM_POLICY") +
                                            (dir == XFRM_POLICY_IN ? " in" : " out")});
  }
  return {};
}

Expected<void, SysError> xfrm_enable_udp_encap(int fd) {
  int type = UDP_ENCAP_ESPINUDP;
  if (::setsockopt(fd, IPPROTO_UDP, UDP_ENCAP, &type, sizeof type) != 0)
    return unexpected(SysError{errno, "setsockopt UDP_ENCAP"});
  return {};
}

// ------------------------------------------------------------------------- XfrmSocket

void XfrmSocket::Closer::operator()(mnl_socket* s) const {
  if (s != nullptr) mnl_socket_close(s);
}

Expected<XfrmSocket, SysError> XfrmSocket::open() {
  XfrmSocket s;
  s.nl_.reset(mnl_socket_open2(NETLINK_XFRM, SOCK_CLOEXEC));
  if (!s.nl_) return unexpected(SysError{errno, "socket NETLINK_XFRM"});
  int fd = mnl_socket_get_fd(s.nl_.get());
  int one = 1;
  // Best effort (Linux >= 4.12): error texts from the kernel, and errors that do not
  // echo the request, which would carry key material back.
  ::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  ::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  timeval tv{kReceiveTimeoutSeconds, 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
    return unexpected(SysError{errno, "setsockopt SO_RCVTIMEO"});
  if (mnl_socket_bind(s.nl_.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return unexpected(SysError{errno, "bind NETLINK_XFRM"});
  s.portid_ = mnl_socket_get_portid(s.nl_.get());
  s.buf_.resize(kReceiveBuffer);
  return s;
}

void XfrmEventSocket::Closer::operator()(mnl_socket* s) const { mnl_socket_close(s); }

Expected<XfrmEventSocket, SysError> XfrmEventSocket::open() {
  XfrmEventSocket s;
  s.nl_.reset(mnl_socket_open2(NETLINK_XFRM, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!s.nl_) return unexpected(SysError{errno, "socket NETLINK_XFRM (events)"});
  if (mnl_socket_bind(s.nl_.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return unexpected(SysError{errno, "bind NETLINK_XFRM (events)"});
  for (int group : {XFRMNLGRP_MAPPING, XFRMNLGRP_EXPIRE, XFRMNLGRP_ACQUIRE})
    if (mnl_socket_setsockopt(s.nl_.get(), NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0)
      return unexpected(SysError{errno, "join XFRMNLGRP " + std::to_string(group)});
  s.buf_.resize(kReceiveBuffer);
  return s;
}

int XfrmEventSocket::fd() const { return mnl_socket_get_fd(nl_.get()); }

XfrmEvents XfrmEventSocket::read(std::uint64_t& malformed) {
  XfrmEvents out;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_.get(), buf_.data(), buf_.size());
    if (n <= 0) break;  // EAGAIN: all read (ENOBUFS: some were lost, the next ESP reports again)
    std::size_t len = static_cast<std::size_t>(n), off = 0;
    while (off + sizeof(nlmsghdr) <= len) {
      nlmsghdr h;
      std::memcpy(&h, buf_.data() + off, sizeof h);
      if (h.nlmsg_len < sizeof(nlmsghdr) || off + h.nlmsg_len > len) {
        malformed++;
        break;
      }
      const ByteView message(buf_.data() + off, h.nlmsg_len);
      if (h.nlmsg_type == XFRM_MSG_MAPPING) {
        if (auto m = parse_mapping(message))
          out.mappings.push_back(*m);
        else
          malformed++;
      } else if (h.nlmsg_type == XFRM_MSG_EXPIRE) {
        if (auto e = parse_expire(message))
          out.expires.push_back(*e);
        else
          malformed++;
      } else if (h.nlmsg_type == XFRM_MSG_ACQUIRE) {
        if (auto a = parse_acquire(message))
          out.acquires.push_back(*a);
        else
          malformed++;
      }
      off += NLMSG_ALIGN(h.nlmsg_len);
    }
  }
  return out;
}

Expected<void, SysError> XfrmSocket::request(ByteView message) {
  return exchange(message, nullptr);
}

Expected<Bytes, SysError> XfrmSocket::query(ByteView message) {
  Bytes reply;
  if (auto r = exchange(message, &reply); !r) return unexpected(r.error());
  return reply;
}

Expected<std::vector<Bytes>, SysError> XfrmSocket::dump(ByteView message) {
  std::vector<Bytes> parts;
  auto r = exchange(message, nullptr, &parts);
  if (!r) {
    for (auto& p : parts) wipe(p);
    return unexpected(r.error());
  }
  return parts;
}

Expected<void, SysError> XfrmSocket::exchange(ByteView message, Bytes* reply, std::vector<Bytes>* parts) {
  if (!nl_) return unexpected(SysError{EBADF, "xfrm socket not open"});
  if (message.size() < sizeof(nlmsghdr)) return unexpected(SysError{EINVAL, "xfrm: short message"});
  Bytes out(message.begin(), message.end());
  auto* nlh = reinterpret_cast<nlmsghdr*>(out.data());
  const std::string name = xfrm_message_name(nlh->nlmsg_type);
  if (++seq_ == 0) ++seq_;  // 0 would match any answer in libmnl's check
  nlh->nlmsg_seq = seq_;
  nlh->nlmsg_pid = 0;
  if (mnl_socket_sendto(nl_.get(), out.data(), out.size()) < 0)
    return unexpected(SysError{errno, "sendto " + name});

  mnl_cb_t control[NLMSG_MIN_TYPE] = {};
  control[NLMSG_ERROR] = on_error;
  control[NLMSG_DONE] = on_done;
  Exchange ex;
  ex.reply = reply;
  ex.parts = parts;
  while (!ex.done) {
    ssize_t n = mnl_socket_recvfrom(nl_.get(), buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int code = (errno == EAGAIN || errno == EWOULDBLOCK) ? ETIMEDOUT : errno;
      return unexpected(SysError{code, "recv " + name});
    }
    int r = mnl_cb_run2(buf_.data(), static_cast<std::size_t>(n), seq_, portid_, on_data, &ex,
                        control, NLMSG_MIN_TYPE);
    if (r == MNL_CB_ERROR) {
      if (ex.error != 0) {
        std::string context = name;
        if (!ex.kernel_message.empty()) context += " (kernel: " + ex.kernel_message + ")";
        return unexpected(SysError{ex.error, context});
      }
      // EPROTO: the sequence number of an earlier request that timed out.
      if (errno == EPROTO) continue;
      return unexpected(SysError{errno, "netlink " + name});
    }
  }
  if (reply != nullptr && reply->empty()) return unexpected(SysError{ENODATA, name + ": no reply"});
  return {};
}

// ------------------------------------------------------------------------- XfrmChildSas

bool XfrmChildSas::PolicyKeyLess::operator()(const PolicyKey& a, const PolicyKey& b) const {
  return std::make_tuple(selector_tuple(a.selector), static_cast<int>(a.dir)) <
         std::make_tuple(selector_tuple(b.selector), static_cast<int>(b.dir));
}

XfrmChildSas::XfrmChildSas(XfrmTransport& kernel, std::uint32_t first_reqid)
    : kernel_(kernel), next_reqid_(first_reqid == 0 ? 1 : first_reqid) {}

std::optional<std::uint64_t> XfrmChildSas::find_by_sa(const IpAddress& dst, std::uint32_t spi) const {
  if (auto sa = find_sa(dst, spi)) return sa->child_id;
  return std::nullopt;
}

std::optional<XfrmSaRef> XfrmChildSas::find_sa(const IpAddress& dst, std::uint32_t spi) const {
  for (const auto& [id, st] : children_) {
    if (st.child.spi_in == spi && st.child.local.address == dst) return XfrmSaRef{id, dst, spi, true};
    if (st.child.spi_out == spi && st.child.remote.address == dst) return XfrmSaRef{id, dst, spi, false};
  }
  return std::nullopt;
}

std::optional<std::uint32_t> XfrmChildSas::reqid(std::uint64_t child_id) const {
  auto it = children_.find(child_id);
  if (it == children_.end()) return std::nullopt;
  return it->second.reqid;
}

std::vector<XfrmPolicy> XfrmChildSas::policies() const {
  std::vector<XfrmPolicy> out;
  for (const auto& [key, rec] : policies_) out.push_back(rec.policy);
  return out;
}

XfrmSa XfrmChildSas::sa_of(const XfrmChild& c, std::uint32_t reqid, bool inbound) {
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

std::uint32_t XfrmChildSas::acquire_reqid(const std::string& key) {
  auto& rec = reqids_[key];
  if (rec.refs++ == 0) {
    rec.reqid = next_reqid_++;
    if (next_reqid_ == 0) next_reqid_ = 1;  // reqid 0 means "any" in templates
  }
  return rec.reqid;
}

void XfrmChildSas::release_reqid(const std::string& key) {
  auto it = reqids_.find(key);
  if (it != reqids_.end() && --it->second.refs <= 0) reqids_.erase(it);
}

Expected<void, SysError> XfrmChildSas::release_policy(const PolicyKey& key) {
  auto it = policies_.find(key);
  if (it == policies_.end()) return {};
  if (--it->second.refs > 0) return {};
  XfrmPolicy p = it->second.policy;
  policies_.erase(it);
  auto r = kernel_.request(build_policy_delete(p.selector, p.dir));
  if (!r && !is_gone(r.error()))
    return unexpected(with_context(
        r.error(), std::string("delete ") + to_string(p.dir) + " policy " + to_string(p.selector)));
  return {};
}

Expected<void, SysError> XfrmChildSas::install(std::uint64_t child_id, const XfrmChild& child, bool outbound) {
  const std::string where = "xfrm install child " + std::to_string(child_id);
  if (contains(child_id)) return unexpected(SysError{EEXIST, where + ": already installed"});
  if (child.local.address.family() != child.remote.address.family())
    return unexpected(SysError{EINVAL, where + ": endpoints of different families"});

  Installed st;
  st.child = child;
  st.outbound = outbound;
  st.reqid_key = ts_key(child.local_ts, child.remote_ts);
  st.reqid = acquire_reqid(st.reqid_key);
  auto fail = [&](const SysError& e) {
    release_reqid(st.reqid_key);
    wipe_keys(st.child);
    return unexpected(with_context(e, where));
  };

  // Everything is built before the kernel is touched: a bad key length must not leave
  // half a Child SA behind.
  XfrmSa in = sa_of(st.child, st.reqid, true), out = sa_of(st.child, st.reqid, false);
  auto in_msg = build_sa_add(in);
  if (!in_msg) return fail(in_msg.error());
  auto out_msg = build_sa_add(out);
  if (!out_msg) return fail(out_msg.error());
  auto wanted = policies_for(child, st.reqid);
  if (!wanted) return fail(wanted.error());

  if (auto r = kernel_.request(*in_msg); !r)
    return fail(with_context(r.error(), "inbound SA spi " + hex32(in.spi)));
  if (outbound) {
    if (auto r = kernel_.request(*out_msg); !r) {
      (void)kernel_.request(build_sa_delete(in.src().address, in.dst().address, in.spi));
      return fail(with_context(r.error(), "outbound SA spi " + hex32(out.spi)));
    }
  }
  wipe(*in_msg);
  wipe(*out_msg);

  // Policies this call took a reference on, with what a re-pointed one was before, for
  // the undo on failure.
  std::vector<std::pair<PolicyKey, std::optional<XfrmPolicy>>> touched;
  auto undo = [&]() {
    for (auto it = touched.rbegin(); it != touched.rend(); ++it) {
      if (it->second) {
        (void)kernel_.request(build_policy_add(*it->second, true));
        policies_[it->first].policy = *it->second;
      }
      (void)release_policy(it->first);
    }
    if (outbound) (void)kernel_.request(build_sa_delete(out.src().address, out.dst().address, out.spi));
    (void)kernel_.request(build_sa_delete(in.src().address, in.dst().address, in.spi));
  };
  for (const XfrmPolicy& p : *wanted) {
    PolicyKey key{p.selector, p.dir};
    auto it = policies_.find(key);
    std::optional<XfrmPolicy> previous;
    if (it == policies_.end()) {
      if (auto r = kernel_.request(build_policy_add(p)); !r) {
        undo();
        return fail(with_context(r.error(), std::string("add ") + to_string(p.dir) + " policy " +
                                                to_string(p.selector)));
      }
      it = policies_.emplace(key, PolicyRecord{p, 0}).first;
    } else if (!same_template(it->second.policy, p)) {
      // Another Child SA installed it with other endpoints or reqid: the newest wins.
      if (auto r = kernel_.request(build_policy_add(p, true)); !r) {
        undo();
        return fail(with_context(r.error(), std::string("update ") + to_string(p.dir) + " policy " +
                                                to_string(p.selector)));
      }
      previous = it->second.policy;
      it->second.policy = p;
    }
    ++it->second.refs;
    touched.emplace_back(key, previous);
    st.policies.push_back(key);
  }
  children_.emplace(child_id, std::move(st));
  return {};
}

Expected<void, SysError> XfrmChildSas::activate_outbound(std::uint64_t child_id) {
  const std::string where = "xfrm activate outbound child " + std::to_string(child_id);
  auto it = children_.find(child_id);
  if (it == children_.end()) return unexpected(SysError{ENOENT, where + ": not installed"});
  Installed& st = it->second;
  if (st.outbound) return {};
  XfrmSa out = sa_of(st.child, st.reqid, false);
  auto msg = build_sa_add(out);
  if (!msg) return unexpected(with_context(msg.error(), where));
  auto r = kernel_.request(*msg);
  wipe(*msg);
  if (!r) return unexpected(with_context(r.error(), where + ": outbound SA spi " + hex32(out.spi)));
  st.outbound = true;
  return {};
}

bool XfrmChildSas::outbound_active(std::uint64_t child_id) const {
  auto it = children_.find(child_id);
  return it != children_.end() && it->second.outbound;
}

Expected<void, SysError> XfrmChildSas::remove(std::uint64_t child_id, XfrmChildUsage* last,
                                              std::vector<XfrmSaRef>* gone) {
  const std::string where = "xfrm remove child " + std::to_string(child_id);
  auto it = children_.find(child_id);
  if (it == children_.end()) return unexpected(SysError{ENOENT, where + ": not installed"});
  Installed& st = it->second;
  std::optional<SysError> first;
  auto note = [&](const SysError& e) {
    if (!first) first = with_context(e, where);
  };
  // SAs before policies: without the policies, traffic would leave unprotected for a
  // moment; without the SAs it is only dropped.
  for (bool inbound : {false, true}) {
    if (!inbound && !st.outbound) continue;
    XfrmSa sa = sa_of(st.child, st.reqid, inbound);
    if (last != nullptr) {
      // Traffic between this read and the delete goes uncounted: a packet or two.
      auto reply = kernel_.query(build_sa_get(sa.src().address, sa.dst().address, sa.spi));
      std::optional<XfrmSaInfo> info;
      if (reply) {
        if (auto i = parse_sa(*reply)) info = *i;
        wipe(*reply);
      }
      if (info) {
        (inbound ? last->in : last->out) = info->usage;
        if (inbound) last->in_stats = info->stats;
      } else if (gone != nullptr && (!reply && is_gone(reply.error()))) {
        gone->push_back(XfrmSaRef{child_id, sa.dst().address, sa.spi, inbound});
      }
    }
    auto r = kernel_.request(build_sa_delete(sa.src().address, sa.dst().address, sa.spi));
    if (!r && !is_gone(r.error()))
      note(with_context(
          r.error(), std::string(inbound ? "inbound" : "outbound") + " SA spi " + hex32(sa.spi)));
  }
  for (const PolicyKey& key : st.policies)
    if (auto r = release_policy(key); !r) note(r.error());
  release_reqid(st.reqid_key);
  wipe_keys(st.child);
  children_.erase(it);
  if (first) return unexpected(*first);
  return {};
}

Expected<void, SysError> XfrmChildSas::install_trap(std::uint64_t trap_id, const XfrmChild& shape) {
  const std::string where = "xfrm trap " + std::to_string(trap_id);
  if (traps_.count(trap_id)) return unexpected(SysError{EEXIST, where + ": already installed"});
  if (shape.local.address.family() != shape.remote.address.family())
    return unexpected(SysError{EINVAL, where + ": endpoints of different families"});
  Trap trap;
  trap.reqid_key = ts_key(shape.local_ts, shape.remote_ts);
  const std::uint32_t reqid = acquire_reqid(trap.reqid_key);
  auto wanted = policies_for(shape, reqid);
  if (!wanted) {
    release_reqid(trap.reqid_key);
    return unexpected(with_context(wanted.error(), where));
  }
  for (const XfrmPolicy& p : *wanted) {
    PolicyKey key{p.selector, p.dir};
    auto it = policies_.find(key);
    if (it == policies_.end()) {
      if (auto r = kernel_.request(build_policy_add(p)); !r) {
        for (const auto& k : trap.policies) (void)release_policy(k);
        release_reqid(trap.reqid_key);
        return unexpected(with_context(r.error(), where + ": add " + to_string(p.dir) + " policy " +
                                                      to_string(p.selector)));
      }
      it = policies_.emplace(key, PolicyRecord{p, 0}).first;
    }
    // A Child SA's policy already there serves the trap as it is.
    ++it->second.refs;
    trap.policies.push_back(key);
  }
  traps_.emplace(trap_id, std::move(trap));
  return {};
}

Expected<void, SysError> XfrmChildSas::remove_trap(std::uint64_t trap_id) {
  auto it = traps_.find(trap_id);
  if (it == traps_.end()) return unexpected(SysError{ENOENT, "xfrm trap " + std::to_string(trap_id) + ": not installed"});
  std::optional<SysError> first;
  for (const PolicyKey& key : it->second.policies)
    if (auto r = release_policy(key); !r && !first) first = r.error();
  release_reqid(it->second.reqid_key);
  traps_.erase(it);
  if (first) return unexpected(*first);
  return {};
}

std::optional<std::uint64_t> XfrmChildSas::find_trap(const XfrmSelector& out_selector) const {
  for (const auto& [id, trap] : traps_)
    for (const PolicyKey& k : trap.policies)
      if (k.dir == XfrmDir::kOut && k.selector == out_selector) return id;
  return std::nullopt;
}

Expected<void, SysError> XfrmChildSas::remove_all() {
  std::optional<SysError> first;
  while (!children_.empty()) {
    auto r = remove(children_.begin()->first);
    if (!r && !first) first = r.error();
  }
  while (!traps_.empty()) {
    auto r = remove_trap(traps_.begin()->first);
    if (!r && !first) first = r.error();
  }
  if (first) return unexpected(*first);
  return {};
}

Expected<XfrmChildUsage, SysError> XfrmChildSas::usage(std::uint64_t child_id) {
  const std::string where = "xfrm usage child " + std::to_string(child_id);
  auto it = children_.find(child_id);
  if (it == children_.end()) return unexpected(SysError{ENOENT, where + ": not installed"});
  XfrmChildUsage u;
  for (bool inbound : {true, false}) {
    if (!inbound && !it->second.outbound) continue;  // not sending yet: nothing counted
    XfrmSa sa = sa_of(it->second.child, it->second.reqid, inbound);
    auto reply = kernel_.query(build_sa_get(sa.src().address, sa.dst().address, sa.spi));
    if (!reply) return unexpected(with_context(reply.error(), where + ": SA spi " + hex32(sa.spi)));
    auto info = parse_sa(*reply);
    if (!info) return unexpected(with_context(info.error(), where));
    (inbound ? u.in : u.out) = info->usage;
    if (inbound) u.in_stats = info->stats;
  }
  return u;
}

Expected<std::map<std::uint64_t, XfrmChildUsage>, SysError> XfrmChildSas::usage_all() {
  std::map<std::uint64_t, XfrmChildUsage> out;
  if (children_.empty()) return out;  // nothing to ask the kernel about
  // (destination, SPI) -> (Child SA, inbound): how the kernel tells ESP SAs apart.
  std::map<std::pair<IpAddress, std::uint32_t>, std::pair<std::uint64_t, bool>> ours;
  for (const auto& [id, st] : children_) {
    ours[{st.child.local.address, st.child.spi_in}] = {id, true};
    if (st.outbound) ours[{st.child.remote.address, st.child.spi_out}] = {id, false};
  }
  auto parts = kernel_.dump(build_sa_dump());
  if (!parts) return unexpected(with_context(parts.error(), "xfrm usage of all Child SAs"));
  for (auto& m : *parts) {
    auto info = parse_sa(m);
    wipe(m);  // the kernel reports the keys of every SA, ours and others'
    if (!info || info->proto != IPPROTO_ESP) continue;  // NLMSG_DONE's neighbours, AH, ...
    auto it = ours.find({info->dst, info->spi});
    if (it == ours.end()) continue;
    auto& u = out[it->second.first];
    if (it->second.second) {
      u.in = info->usage;
      u.in_stats = info->stats;
    } else {
      u.out = info->usage;
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::uint64_t>> parse_xfrm_stat(std::string_view text) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!text.empty()) {
    auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    std::size_t i = 0;
    while (i < line.size() && !is_space(line[i])) ++i;
    std::string_view name = line.substr(0, i);
    while (i < line.size() && is_space(line[i])) ++i;
    std::string_view digits = line.substr(i);
    while (!digits.empty() && (is_space(digits.back()) || digits.back() == '\r')) digits.remove_suffix(1);
    if (name.empty() || digits.empty()) continue;
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc() || end != digits.data() + digits.size()) continue;
    out.emplace_back(std::string(name), v);
  }
  return out;
}

Expected<std::vector<std::pair<std::string, std::uint64_t>>, SysError> read_xfrm_stat(const char* path) {
  std::FILE* f = std::fopen(path, "re");
  if (f == nullptr) return unexpected(SysError{errno, std::string("open ") + path});
  std::string text;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return unexpected(SysError{EIO, std::string("read ") + path});
  return parse_xfrm_stat(text);
}

// Brings one SA to the target endpoints after the policies moved; true if it had to be
// touched. The SA may already be there (MIGRATE took it along), need only new
// encapsulation ports, or have to be re-created with its counters.
Expected<bool, SysError> XfrmChildSas::move_sa(const Installed& st, bool inbound,
                                                const XfrmChild& target, XfrmUpdateReport& report) {
  XfrmSa want = sa_of(target, st.reqid, inbound);
  XfrmSa old = sa_of(st.child, st.reqid, inbound);
  const std::string what =
      std::string(inbound ? "inbound" : "outbound") + " SA spi " + hex32(want.spi);
  auto encap_matches = [&](const XfrmSaInfo& i) {
    if (!want.udp_encap) return !i.encap_sport.has_value();
    return i.encap_sport == want.src().port && i.encap_dport == want.dst().port;
  };

  std::optional<XfrmSaInfo> current;
  auto at_new = kernel_.query(build_sa_get(want.src().address, want.dst().address, want.spi));
  if (at_new) {
    auto info = parse_sa(*at_new);
    if (!info) return unexpected(with_context(info.error(), what));
    if (info->src == want.src().address && encap_matches(*info)) return false;
    if (info->src == want.src().address && want.udp_encap && info->encap_sport) {
      // Same addresses, new NAT ports: the one change UPDSA makes in place.
      auto msg = build_sa_add(want, SaRequest::kUpdate);
      if (!msg) return unexpected(with_context(msg.error(), what));
      if (auto r = kernel_.request(*msg); !r)
        return unexpected(with_context(r.error(), what + ": update"));
      ++report.sas_updated;
      return true;
    }
    current = *info;
  } else if (!is_gone(at_new.error())) {
    return unexpected(with_context(at_new.error(), what + ": look-up at the new address"));
  } else {
    auto at_old = kernel_.query(build_sa_get(old.src().address, old.dst().address, old.spi));
    if (!at_old)
      return unexpected(with_context(at_old.error(), what + ": look-up at the old address"));
    auto info = parse_sa(*at_old);
    if (!info) return unexpected(with_context(info.error(), what));
    current = *info;
  }

  SaCarryOver carry{current->replay, current->usage};
  auto msg = build_sa_add(want, SaRequest::kNew, &carry);
  if (!msg) return unexpected(with_context(msg.error(), what));
  auto del = build_sa_delete(current->src, current->dst, want.spi);
  if (current->dst == want.dst().address) {
    // Same (destination, SPI): the kernel's key for the SA, so the old one must go first.
    if (auto r = kernel_.request(del); !r && !is_gone(r.error()))
      return unexpected(with_context(r.error(), what + ": delete before re-adding"));
    if (auto r = kernel_.request(*msg); !r) {
      // Put the old SA back so that the Child SA keeps working where it was.
      if (auto again = build_sa_add(old, SaRequest::kNew, &carry)) (void)kernel_.request(*again);
      return unexpected(with_context(r.error(), what + ": re-add"));
    }
  } else {
    if (auto r = kernel_.request(*msg); !r)
      return unexpected(with_context(r.error(), what + ": re-add"));
    if (auto r = kernel_.request(del); !r && !is_gone(r.error()))
      return unexpected(with_context(r.error(), what + ": delete at the old address"));
  }
  ++report.sas_reinstalled;
  return true;
}

Expected<XfrmUpdateReport, SysError> XfrmChildSas::update_addresses(std::uint64_t child_id,
                                                                     const Endpoint& local,
                                                                     const Endpoint& remote,
                                                                     bool udp_encap) {
  const std::string where =
      "xfrm update child " + std::to_string(child_id) + " to " + describe(local, remote);
  auto it = children_.find(child_id);
  if (it == children_.end()) return unexpected(SysError{ENOENT, where + ": not installed"});
  if (local.address.family() != remote.address.family())
    return unexpected(SysError{EINVAL, where + ": endpoints of different families"});
  Installed& st = it->second;
  XfrmUpdateReport report;

  // MIGRATE without XFRMA_ENCAP keeps an SA's encapsulation: it cannot take it away.
  bool try_migrate = migrate_supported_ && !(st.child.udp_encap && !udp_encap);
  for (const PolicyKey& key : st.policies) {
    PolicyRecord& rec = policies_.at(key);
    auto [src, dst] = tunnel_for(key.dir, local, remote);
    if (rec.policy.tunnel_src == src && rec.policy.tunnel_dst == dst)
      continue;  // a sibling moved it
    auto [old_src, old_dst] = tunnel_for(key.dir, st.child.local, st.child.remote);
    if (try_migrate && rec.policy.tunnel_src == old_src && rec.policy.tunnel_dst == old_dst) {
      XfrmMigration m{old_src, old_dst, src, dst, st.reqid};
      std::optional<EncapPorts> encap;
      if (udp_encap) encap = encap_for(key.dir, local, remote);
      auto r = kernel_.request(build_migrate(key.selector, key.dir, m, encap));
      if (r) {
        rec.policy.tunnel_src = src;
        rec.policy.tunnel_dst = dst;
        ++report.policies_migrated;
        continue;
      }
      report.migrate_error = r.error();
      if (r.error().code == ENOPROTOOPT || r.error().code == EOPNOTSUPP) {
        migrate_supported_ = false;  // a kernel without CONFIG_XFRM_MIGRATE
        try_migrate = false;
      }
    }
    XfrmPolicy p = rec.policy;
    p.tunnel_src = src;
    p.tunnel_dst = dst;
    if (auto r = kernel_.request(build_policy_add(p, true)); !r)
      return unexpected(with_context(
          r.error(), where + ": replace " + to_string(p.dir) + " policy " + to_string(p.selector)));
    rec.policy = p;
    ++report.policies_replaced;
  }

  XfrmChild target = st.child;
  target.local = local;
  target.remote = remote;
  target.udp_encap = udp_encap;
  for (bool inbound : {true, false}) {
    if (!inbound && !st.outbound) continue;  // activate_outbound() adds it where the SA is then
    auto r = move_sa(st, inbound, target, report);
    if (!r) return unexpected(with_context(r.error(), where));
  }
  st.child.local = local;
  st.child.remote = remote;
  st.child.udp_encap = udp_encap;
  return report;
}

}  // namespace mobike::platform
