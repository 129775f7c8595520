#include "platform/xfrm_messages.h"

// glibc's <netinet/in.h> before the uapi headers: <linux/in6.h> then skips what glibc
// already defined.
#include <netinet/in.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/udp.h>
#include <linux/xfrm.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/transform_ids.h"

namespace mobike::platform {
namespace {

// The transform ids as the engine hands them over (plain numbers, for switch cases).
constexpr std::uint16_t kEncrAesCbc = transform_number(EncrId::kAesCbc);
constexpr std::uint16_t kEncrAesGcm16 = transform_number(EncrId::kAesGcm16);
constexpr std::uint16_t kEncrChaCha20Poly1305 = transform_number(EncrId::kChaCha20Poly1305);
constexpr std::uint16_t kIntegSha256_128 = transform_number(IntegId::kHmacSha256_128);
constexpr std::uint16_t kIntegSha384_192 = transform_number(IntegId::kHmacSha384_192);
constexpr std::uint16_t kIntegSha512_256 = transform_number(IntegId::kHmacSha512_256);
constexpr std::size_t kAeadSaltBytes = 4;
constexpr std::uint32_t kAeadIcvBits = 128;

constexpr std::uint16_t kRequestAck = NLM_F_REQUEST | NLM_F_ACK;
// The largest message built here is a NEWSA with an ESN bitmap of XFRMA_REPLAY_ESN_MAX
// bits: about 1.3 KiB.
constexpr std::size_t kMaxMessage = 4096;

template <class T>
T zeroed() {
  T t;
  std::memset(&t, 0, sizeof t);
  return t;
}

// One netlink message under construction; libmnl lays out headers and attributes.
class Message {
 public:
  Message(std::uint16_t type, std::uint16_t flags) : buf_(kMaxMessage, 0) {
    nlh_ = mnl_nlmsg_put_header(buf_.data());
    nlh_->nlmsg_type = type;
    nlh_->nlmsg_flags = flags;
  }
  // The fixed header after nlmsghdr, zeroed (padding included) by libmnl.
  template <class T>
  T* fixed() {
    return static_cast<T*>(mnl_nlmsg_put_extra_header(nlh_, sizeof(T)));
  }
  void attr(std::uint16_t type, const void* data, std::size_t len) {
    // Sizes are bounded by construction (kMaxMessage); running out is a bug here.
    if (!mnl_attr_put_check(nlh_, buf_.size(), type, len, data)) std::abort();
  }
  template <class T>
  void attr(std::uint16_t type, const T& value) {
    attr(type, &value, sizeof value);
  }
  Bytes finish() && {
    buf_.resize(nlh_->nlmsg_len);
    return std::move(buf_);
  }

 private:
  Bytes buf_;
  nlmsghdr* nlh_;
};

std::uint16_t family_of(const IpAddress& a) { return a.is_v4() ? AF_INET : AF_INET6; }

xfrm_address_t to_xfrm(const IpAddress& a) {
  auto x = zeroed<xfrm_address_t>();
  auto b = a.bytes();
  std::memcpy(&x, b.data(), b.size());
  return x;
}

IpAddress from_xfrm(const xfrm_address_t& x, std::uint16_t family) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&x);
  return *IpAddress::from_bytes(ByteView(p, family == AF_INET6 ? 16 : 4));
}

SysError invalid(int code, std::string what) { return SysError{code, "xfrm: " + std::move(what)}; }

std::uint64_t limit_or_inf(std::uint64_t v) { return v == 0 ? XFRM_INF : v; }

bool needs_esn_attr(const XfrmSa& sa) { return sa.transforms.esn || sa.replay_window > 32; }

template <class Header>
Bytes with_key(const Header& h, const Bytes& key) {
  Bytes out(sizeof h + key.size());
  std::memcpy(out.data(), &h, sizeof h);
  std::copy(key.begin(), key.end(), out.begin() + sizeof h);
  return out;
}

template <class Header>
void set_name(Header& h, const char* name) {
  std::snprintf(h.alg_name, sizeof h.alg_name, "%s", name);
}

Expected<void, SysError> put_transforms(Message& m, const EspTransforms& t) {
  auto key_bits = static_cast<unsigned>(t.encr_key.size() * 8);
  switch (t.encr_id) {
    case kEncrAesGcm16:
    case kEncrChaCha20Poly1305: {
      bool gcm = t.encr_id == kEncrAesGcm16;
      if (t.integ_id != 0 || !t.integ_key.empty())
        return unexpected(invalid(EINVAL, "an AEAD transform takes no integrity algorithm"));
      unsigned bits = t.encr_key_bits != 0 ? t.encr_key_bits : 256;
      bool bits_ok = gcm ? (bits == 128 || bits == 192 || bits == 256) : bits == 256;
      if (!bits_ok || t.encr_key.size() != bits / 8 + kAeadSaltBytes)
        return unexpected(invalid(EINVAL, "AEAD key of " + std::to_string(t.encr_key.size()) +
                                              " octets for a " + std::to_string(bits) +
                                              "-bit key plus salt"));
      auto h = zeroed<xfrm_algo_aead>();
      set_name(h, gcm ? "rfc4106(gcm(aes))" : "rfc7539esp(chacha20,poly1305)");
      h.alg_key_len = key_bits;  // the kernel wants the salt counted in
      h.alg_icv_len = kAeadIcvBits;
      Bytes payload = with_key(h, t.encr_key);
      m.attr(XFRMA_ALG_AEAD, payload.data(), payload.size());
      return {};
    }
    case kEncrAesCbc: {
      unsigned bits = t.encr_key_bits;
      if ((bits != 128 && bits != 192 && bits != 256) || t.encr_key.size() * 8 != bits)
        return unexpected(invalid(EINVAL, "AES-CBC key of " + std::to_string(t.encr_key.size()) +
                                              " octets for " + std::to_string(bits) + " bits"));
      struct Auth {
        std::uint16_t id;
        const char* name;
        unsigned trunc_bits;
        std::size_t key_octets;  // RFC 4868: the key is as long as the hash output
      };
      static constexpr Auth kAuth[] = {{kIntegSha256_128, "hmac(sha256)", 128, 32},
                                       {kIntegSha384_192, "hmac(sha384)", 192, 48},
                                       {kIntegSha512_256, "hmac(sha512)", 256, 64}};
      const Auth* auth = nullptr;
      for (const auto& a : kAuth)
        if (a.id == t.integ_id) auth = &a;
      if (auth == nullptr)
        return unexpected(invalid(
            ENOTSUP, "ESP integrity transform " + std::to_string(t.integ_id) + " not supported"));
      if (t.integ_key.size() != auth->key_octets)
        return unexpected(invalid(EINVAL, std::string(auth->name) + " key of " +
                                              std::to_string(t.integ_key.size()) + " octets"));
      auto c = zeroed<xfrm_algo>();
      set_name(c, "cbc(aes)");
      c.alg_key_len = key_bits;
      Bytes crypt = with_key(c, t.encr_key);
      m.attr(XFRMA_ALG_CRYPT, crypt.data(), crypt.size());
      auto a = zeroed<xfrm_algo_auth>();
      set_name(a, auth->name);
      a.alg_key_len = static_cast<unsigned>(t.integ_key.size() * 8);
      a.alg_trunc_len = auth->trunc_bits;
      Bytes authp = with_key(a, t.integ_key);
      m.attr(XFRMA_ALG_AUTH_TRUNC, authp.data(), authp.size());
      return {};
    }
    default:
      return unexpected(invalid(
          ENOTSUP, "ESP encryption transform " + std::to_string(t.encr_id) + " not supported"));
  }
}

xfrm_encap_tmpl encap_tmpl(std::uint16_t sport, std::uint16_t dport) {
  auto e = zeroed<xfrm_encap_tmpl>();
  e.encap_type = UDP_ENCAP_ESPINUDP;
  e.encap_sport = htons(sport);
  e.encap_dport = htons(dport);
  // encap_oa (the original address for transport-mode checksum fix-ups) stays zero:
  // tunnel mode never needs it.
  return e;
}

void fill_selector(xfrm_selector& out, const XfrmSelector& s) {
  out.daddr = to_xfrm(s.dst.first());
  out.saddr = to_xfrm(s.src.first());
  out.dport = htons(s.dport);
  out.dport_mask = htons(s.dport_mask);
  out.sport = htons(s.sport);
  out.sport_mask = htons(s.sport_mask);
  out.family = family_of(s.src.address);
  out.prefixlen_d = s.dst.length;
  out.prefixlen_s = s.src.length;
  out.proto = s.proto;
}

Expected<XfrmSelector, SysError> read_selector(const xfrm_selector& in) {
  if (in.family != AF_INET && in.family != AF_INET6)
    return unexpected(SysError{EBADMSG, "xfrm: selector of unknown address family"});
  const unsigned bits = in.family == AF_INET ? 32 : 128;
  if (in.prefixlen_s > bits || in.prefixlen_d > bits)
    return unexpected(SysError{EBADMSG, "xfrm: selector prefix longer than its addresses"});
  XfrmSelector s;
  s.src = IpPrefix{from_xfrm(in.saddr, in.family), in.prefixlen_s};
  s.dst = IpPrefix{from_xfrm(in.daddr, in.family), in.prefixlen_d};
  s.proto = in.proto;
  s.sport = ntohs(in.sport);
  s.sport_mask = ntohs(in.sport_mask);
  s.dport = ntohs(in.dport);
  s.dport_mask = ntohs(in.dport_mask);
  return s;
}

void fill_infinite(xfrm_lifetime_cfg& l) {
  l.soft_byte_limit = l.hard_byte_limit = XFRM_INF;
  l.soft_packet_limit = l.hard_packet_limit = XFRM_INF;
}

Bytes sa_id_message(std::uint16_t type, std::uint16_t flags, const IpAddress& src,
                    const IpAddress& dst, std::uint32_t spi) {
  Message m(type, flags);
  auto* id = m.fixed<xfrm_usersa_id>();
  id->daddr = to_xfrm(dst);
  id->spi = htonl(spi);
  id->family = family_of(dst);
  id->proto = IPPROTO_ESP;
  m.attr(XFRMA_SRCADDR, to_xfrm(src));
  return std::move(m).finish();
}

// --- integer views of addresses for the range splitter

using U128 = unsigned __int128;

U128 ones(unsigned n) { return n >= 128 ? ~U128(0) : (U128(1) << n) - 1; }

U128 to_int(const IpAddress& a) {
  U128 v = 0;
  for (auto b : a.bytes()) v = (v << 8) | b;
  return v;
}

IpAddress from_int(U128 v, bool v4) {
  if (v4) {
    return IpAddress::v4(static_cast<std::uint32_t>(v));
  }
  std::array<std::uint8_t, 16> o{};
  for (int i = 15; i >= 0; --i, v >>= 8)
    o[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v);
  return IpAddress::v6(o);
}

// Splits [lo, hi] (width-bit integers) into aligned blocks; calls emit(start, host_bits).
template <class F>
void split_range(U128 lo, U128 hi, unsigned width, F emit) {
  if (lo > hi) return;
  for (;;) {
    unsigned k = 0;
    while (k < width && (lo & ones(k + 1)) == 0 && ones(k + 1) <= hi - lo) ++k;
    emit(lo, k);
    U128 end = lo + ones(k);
    if (end >= hi) return;
    lo = end + 1;
  }
}

bool is_icmp(std::uint8_t proto) { return proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6; }

std::uint16_t byte_mask(std::uint16_t m) {
  return m == 0 ? 0 : static_cast<std::uint16_t>(0xff00 | m);
}

}  // namespace

const char* to_string(XfrmDir d) {
  switch (d) {
    case XfrmDir::kIn: return "in";
    case XfrmDir::kOut: return "out";
    case XfrmDir::kFwd: return "fwd";
  }
  return "?";
}

std::string to_string(const XfrmSelector& s) {
  std::string out = s.src.to_string() + " -> " + s.dst.to_string();
  if (s.proto != 0) out += " proto " + std::to_string(s.proto);
  auto port = [](const char* name, std::uint16_t v, std::uint16_t mask) {
    if (mask == 0) return std::string();
    char buf[40];
    std::snprintf(buf, sizeof buf, " %s %u/0x%04x", name, v, mask);
    return std::string(buf);
  };
  return out + port("sport", s.sport, s.sport_mask) + port("dport", s.dport, s.dport_mask);
}

Expected<Bytes, SysError> build_sa_add(const XfrmSa& sa, SaRequest kind, const SaCarryOver* carry) {
  const IpAddress& src = sa.src().address;
  const IpAddress& dst = sa.dst().address;
  if (src.family() != dst.family())
    return unexpected(invalid(EINVAL, "SA endpoints of different families"));
  if (sa.replay_window > XFRMA_REPLAY_ESN_MAX)
    return unexpected(
        invalid(EINVAL, "replay window above " + std::to_string(XFRMA_REPLAY_ESN_MAX)));
  if (sa.transforms.esn && sa.replay_window == 0)
    return unexpected(invalid(EINVAL, "ESN needs a replay window (the kernel refuses 0)"));
  bool esn_attr = needs_esn_attr(sa);

  Message m(kind == SaRequest::kNew ? XFRM_MSG_NEWSA : XFRM_MSG_UPDSA, kRequestAck);
  auto* info = m.fixed<xfrm_usersa_info>();
  // The selector stays zero: in tunnel mode the policies select the traffic, and
  // XFRM_STATE_AF_UNSPEC keeps the kernel from narrowing it to the outer family (IPv6
  // inside an IPv4 tunnel must still match).
  info->id.daddr = to_xfrm(dst);
  info->id.spi = htonl(sa.spi);
  info->id.proto = IPPROTO_ESP;
  info->saddr = to_xfrm(src);
  info->lft.soft_byte_limit = limit_or_inf(sa.lifetime.soft_bytes);
  info->lft.hard_byte_limit = limit_or_inf(sa.lifetime.hard_bytes);
  info->lft.soft_packet_limit = limit_or_inf(sa.lifetime.soft_packets);
  info->lft.hard_packet_limit = limit_or_inf(sa.lifetime.hard_packets);
  info->lft.soft_add_expires_seconds = sa.lifetime.soft_add_seconds;
  info->lft.hard_add_expires_seconds = sa.lifetime.hard_add_seconds;
  info->reqid = sa.reqid;
  info->family = family_of(dst);
  info->mode = XFRM_MODE_TUNNEL;
  info->replay_window = esn_attr ? 0 : static_cast<std::uint8_t>(sa.replay_window);
  info->flags = XFRM_STATE_AF_UNSPEC | (sa.transforms.esn ? XFRM_STATE_ESN : 0);

  if (auto r = put_transforms(m, sa.transforms); !r) return unexpected(r.error());
  if (sa.udp_encap) m.attr(XFRMA_ENCAP, encap_tmpl(sa.src().port, sa.dst().port));

  const SaReplayState* replay = carry != nullptr && carry->replay ? &*carry->replay : nullptr;
  if (esn_attr) {
    std::uint32_t words = (sa.replay_window + 31) / 32;
    auto esn = zeroed<xfrm_replay_state_esn>();
    esn.bmp_len = words;
    esn.replay_window = sa.replay_window;
    Bytes payload(sizeof esn);
    if (replay != nullptr) {
      esn.oseq = replay->oseq;
      esn.seq = replay->seq;
      esn.oseq_hi = replay->oseq_hi;
      esn.seq_hi = replay->seq_hi;
      // With the bitmap the new SA knows which recent packets it has already seen.
      payload.resize(sizeof esn + words * 4, 0);
      for (std::size_t i = 0; i < words && i < replay->bitmap.size(); ++i)
        std::memcpy(payload.data() + sizeof esn + i * 4, &replay->bitmap[i], 4);
    }
    // Without counters the 24-octet form is enough (ip(8) sends that too): the kernel
    // allocates a zeroed bitmap of bmp_len words.
    std::memcpy(payload.data(), &esn, sizeof esn);
    m.attr(XFRMA_REPLAY_ESN_VAL, payload.data(), payload.size());
  } else if (replay != nullptr) {
    auto r = zeroed<xfrm_replay_state>();
    r.oseq = replay->oseq;
    r.seq = replay->seq;
    r.bitmap = replay->bitmap.empty() ? 0 : replay->bitmap[0];
    m.attr(XFRMA_REPLAY_VAL, r);
  }
  if (carry != nullptr && carry->usage) {
    auto cur = zeroed<xfrm_lifetime_cur>();
    cur.bytes = carry->usage->bytes;
    cur.packets = carry->usage->packets;
    cur.add_time = carry->usage->add_time;
    cur.use_time = carry->usage->use_time;
    m.attr(XFRMA_LTIME_VAL, cur);
  }
  return std::move(m).finish();
}

Bytes build_sa_delete(const IpAddress& src, const IpAddress& dst, std::uint32_t spi) {
  return sa_id_message(XFRM_MSG_DELSA, kRequestAck, src, dst, spi);
}

Bytes build_sa_get(const IpAddress& src, const IpAddress& dst, std::uint32_t spi) {
  // No NLM_F_ACK: the answer is the SA itself or an error.
  return sa_id_message(XFRM_MSG_GETSA, NLM_F_REQUEST, src, dst, spi);
}

Bytes build_sa_dump() {
  // No filter attributes: the caller picks its SAs out by (destination, SPI).
  return Message(XFRM_MSG_GETSA, NLM_F_REQUEST | NLM_F_DUMP).finish();
}

Bytes build_policy_add(const XfrmPolicy& p, bool update) {
  Message m(update ? XFRM_MSG_UPDPOLICY : XFRM_MSG_NEWPOLICY, kRequestAck);
  auto* info = m.fixed<xfrm_userpolicy_info>();
  fill_selector(info->sel, p.selector);
  fill_infinite(info->lft);
  info->priority = p.priority;
  info->dir = static_cast<std::uint8_t>(p.dir);
  info->action = XFRM_POLICY_ALLOW;
  info->share = XFRM_SHARE_ANY;

  auto t = zeroed<xfrm_user_tmpl>();
  t.id.daddr = to_xfrm(p.tunnel_dst);
  t.id.proto = IPPROTO_ESP;  // spi 0: any SA with this reqid
  t.family = family_of(p.tunnel_dst);
  t.saddr = to_xfrm(p.tunnel_src);
  t.reqid = p.reqid;
  t.mode = XFRM_MODE_TUNNEL;
  // All algorithms acceptable: the kernel compares these bitmaps with the SA's
  // algorithm ids on input, and the SA is already bound by reqid.
  t.aalgos = t.ealgos = t.calgos = ~0u;
  m.attr(XFRMA_TMPL, t);
  return std::move(m).finish();
}

Bytes build_policy_delete(const XfrmSelector& sel, XfrmDir dir) {
  Message m(XFRM_MSG_DELPOLICY, kRequestAck);
  auto* id = m.fixed<xfrm_userpolicy_id>();
  fill_selector(id->sel, sel);
  id->dir = static_cast<std::uint8_t>(dir);
  return std::move(m).finish();
}

Bytes build_migrate(const XfrmSelector& sel, XfrmDir dir, const XfrmMigration& mig,
                    const std::optional<EncapPorts>& encap) {
  Message m(XFRM_MSG_MIGRATE, kRequestAck);
  auto* id = m.fixed<xfrm_userpolicy_id>();
  fill_selector(id->sel, sel);
  id->dir = static_cast<std::uint8_t>(dir);

  auto um = zeroed<xfrm_user_migrate>();
  um.old_daddr = to_xfrm(mig.old_dst);
  um.old_saddr = to_xfrm(mig.old_src);
  um.new_daddr = to_xfrm(mig.new_dst);
  um.new_saddr = to_xfrm(mig.new_src);
  um.proto = IPPROTO_ESP;
  um.mode = XFRM_MODE_TUNNEL;
  um.reqid = mig.reqid;
  um.old_family = family_of(mig.old_dst);
  um.new_family = family_of(mig.new_dst);
  m.attr(XFRMA_MIGRATE, um);
  if (encap) m.attr(XFRMA_ENCAP, encap_tmpl(encap->sport, encap->dport));
  return std::move(m).finish();
}

Expected<XfrmMapping, SysError> parse_mapping(ByteView message) {
  auto bad = [](const char* what) { return unexpected(SysError{EBADMSG, std::string("xfrm mapping: ") + what}); };
  if (message.size() < sizeof(nlmsghdr)) return bad("short netlink message");
  nlmsghdr h;
  std::memcpy(&h, message.data(), sizeof h);
  if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > message.size()) return bad("netlink length out of bounds");
  if (h.nlmsg_type != XFRM_MSG_MAPPING) return bad("not a mapping message");
  if (h.nlmsg_len < NLMSG_LENGTH(sizeof(xfrm_user_mapping))) return bad("short mapping message");
  xfrm_user_mapping um;
  std::memcpy(&um, message.data() + NLMSG_HDRLEN, sizeof um);
  if (um.id.family != AF_INET && um.id.family != AF_INET6) return bad("unknown address family");
  if (um.id.proto != IPPROTO_ESP) return bad("not ESP");
  XfrmMapping m;
  m.dst = from_xfrm(um.id.daddr, um.id.family);
  m.spi = ntohl(um.id.spi);
  m.reqid = um.reqid;
  m.old_src = Endpoint{from_xfrm(um.old_saddr, um.id.family), ntohs(um.old_sport)};
  m.new_src = Endpoint{from_xfrm(um.new_saddr, um.id.family), ntohs(um.new_sport)};
  return m;
}

Bytes build_mapping(const XfrmMapping& m) {
  Bytes out(NLMSG_SPACE(sizeof(xfrm_user_mapping)), 0);
  nlmsghdr h{};
  h.nlmsg_len = NLMSG_LENGTH(sizeof(xfrm_user_mapping));
  h.nlmsg_type = XFRM_MSG_MAPPING;
  std::memcpy(out.data(), &h, sizeof h);
  auto um = zeroed<xfrm_user_mapping>();
  um.id.daddr = to_xfrm(m.dst);
  um.id.spi = htonl(m.spi);
  um.id.family = family_of(m.dst);
  um.id.proto = IPPROTO_ESP;
  um.reqid = m.reqid;
  um.old_saddr = to_xfrm(m.old_src.address);
  um.new_saddr = to_xfrm(m.new_src.address);
  um.old_sport = htons(m.old_src.port);
  um.new_sport = htons(m.new_src.port);
  std::memcpy(out.data() + NLMSG_HDRLEN, &um, sizeof um);
  return out;
}

namespace {

std::uint64_t inf_to_zero(std::uint64_t v) { return v == XFRM_INF ? 0 : v; }

}  // namespace

Expected<XfrmExpire, SysError> parse_expire(ByteView message) {
  auto bad = [](const char* what) { return unexpected(SysError{EBADMSG, std::string("xfrm expire: ") + what}); };
  if (message.size() < sizeof(nlmsghdr)) return bad("short netlink message");
  nlmsghdr h;
  std::memcpy(&h, message.data(), sizeof h);
  if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > message.size()) return bad("netlink length out of bounds");
  if (h.nlmsg_type != XFRM_MSG_EXPIRE) return bad("not an expire message");
  if (h.nlmsg_len < NLMSG_LENGTH(sizeof(xfrm_user_expire))) return bad("short expire message");
  xfrm_user_expire ue;
  std::memcpy(&ue, message.data() + NLMSG_HDRLEN, sizeof ue);
  const xfrm_usersa_info& st = ue.state;
  if (st.family != AF_INET && st.family != AF_INET6) return bad("unknown address family");
  XfrmExpire e;
  e.src = from_xfrm(st.saddr, st.family);
  e.dst = from_xfrm(st.id.daddr, st.family);
  e.spi = ntohl(st.id.spi);
  e.reqid = st.reqid;
  e.hard = ue.hard != 0;
  e.lifetime = SaLifetime{inf_to_zero(st.lft.soft_byte_limit),   inf_to_zero(st.lft.hard_byte_limit),
                          inf_to_zero(st.lft.soft_packet_limit), inf_to_zero(st.lft.hard_packet_limit),
                          st.lft.soft_add_expires_seconds,       st.lft.hard_add_expires_seconds};
  e.usage = SaUsage{st.curlft.bytes, st.curlft.packets, st.curlft.add_time, st.curlft.use_time};
  const std::uint64_t bytes_limit = e.hard ? e.lifetime.hard_bytes : e.lifetime.soft_bytes;
  const std::uint64_t packets_limit = e.hard ? e.lifetime.hard_packets : e.lifetime.soft_packets;
  if (bytes_limit && e.usage.bytes >= bytes_limit)
    e.limit = XfrmExpire::Limit::kBytes;
  else if (packets_limit && e.usage.packets >= packets_limit)
    e.limit = XfrmExpire::Limit::kPackets;
  else
    e.limit = XfrmExpire::Limit::kTime;
  return e;
}

Bytes build_expire(const XfrmExpire& e) {
  Bytes out(NLMSG_SPACE(sizeof(xfrm_user_expire)), 0);
  nlmsghdr h{};
  h.nlmsg_len = NLMSG_LENGTH(sizeof(xfrm_user_expire));
  h.nlmsg_type = XFRM_MSG_EXPIRE;
  std::memcpy(out.data(), &h, sizeof h);
  auto ue = zeroed<xfrm_user_expire>();
  ue.state.id.daddr = to_xfrm(e.dst);
  ue.state.saddr = to_xfrm(e.src);
  ue.state.id.spi = htonl(e.spi);
  ue.state.id.proto = IPPROTO_ESP;
  ue.state.family = family_of(e.dst);
  ue.state.mode = XFRM_MODE_TUNNEL;
  ue.state.reqid = e.reqid;
  ue.state.lft.soft_byte_limit = limit_or_inf(e.lifetime.soft_bytes);
  ue.state.lft.hard_byte_limit = limit_or_inf(e.lifetime.hard_bytes);
  ue.state.lft.soft_packet_limit = limit_or_inf(e.lifetime.soft_packets);
  ue.state.lft.hard_packet_limit = limit_or_inf(e.lifetime.hard_packets);
  ue.state.lft.soft_add_expires_seconds = e.lifetime.soft_add_seconds;
  ue.state.lft.hard_add_expires_seconds = e.lifetime.hard_add_seconds;
  ue.state.curlft.bytes = e.usage.bytes;
  ue.state.curlft.packets = e.usage.packets;
  ue.state.curlft.add_time = e.usage.add_time;
  ue.state.curlft.use_time = e.usage.use_time;
  ue.hard = e.hard ? 1 : 0;
  std::memcpy(out.data() + NLMSG_HDRLEN, &ue, sizeof ue);
  return out;
}

Expected<XfrmAcquire, SysError> parse_acquire(ByteView message) {
  auto bad = [](const char* what) { return unexpected(SysError{EBADMSG, std::string("xfrm acquire: ") + what}); };
  if (message.size() < sizeof(nlmsghdr)) return bad("short netlink message");
  nlmsghdr h;
  std::memcpy(&h, message.data(), sizeof h);
  if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > message.size()) return bad("netlink length out of bounds");
  if (h.nlmsg_type != XFRM_MSG_ACQUIRE) return bad("not an acquire message");
  if (h.nlmsg_len < NLMSG_LENGTH(sizeof(xfrm_user_acquire))) return bad("short acquire message");
  xfrm_user_acquire ua;
  std::memcpy(&ua, message.data() + NLMSG_HDRLEN, sizeof ua);
  if (ua.id.proto != IPPROTO_ESP) return bad("not ESP");
  if (ua.policy.dir > XFRM_POLICY_FWD) return bad("unknown policy direction");
  auto flow = read_selector(ua.sel);
  if (!flow) return unexpected(flow.error());
  auto policy = read_selector(ua.policy.sel);
  if (!policy) return unexpected(policy.error());
  XfrmAcquire a;
  // The template's family: the policy's, unless the SA tunnels another family.
  const std::uint16_t family = ua.sel.family;
  a.src = from_xfrm(ua.saddr, family);
  a.dst = from_xfrm(ua.id.daddr, family);
  a.flow = *flow;
  a.policy = *policy;
  a.dir = static_cast<XfrmDir>(ua.policy.dir);
  a.seq = ua.seq;
  return a;
}

Bytes build_acquire(const XfrmAcquire& a) {
  Bytes out(NLMSG_SPACE(sizeof(xfrm_user_acquire)), 0);
  nlmsghdr h{};
  h.nlmsg_len = NLMSG_LENGTH(sizeof(xfrm_user_acquire));
  h.nlmsg_type = XFRM_MSG_ACQUIRE;
  std::memcpy(out.data(), &h, sizeof h);
  auto ua = zeroed<xfrm_user_acquire>();
  ua.id.daddr = to_xfrm(a.dst);
  ua.id.proto = IPPROTO_ESP;
  ua.saddr = to_xfrm(a.src);
  fill_selector(ua.sel, a.flow);
  fill_selector(ua.policy.sel, a.policy);
  ua.policy.dir = static_cast<std::uint8_t>(a.dir);
  ua.seq = a.seq;
  std::memcpy(out.data() + NLMSG_HDRLEN, &ua, sizeof ua);
  return out;
}

Expected<XfrmSaInfo, SysError> parse_sa(ByteView message) {
  auto bad = [](const char* what) {
    return unexpected(SysError{EBADMSG, std::string("xfrm: ") + what});
  };
  if (message.size() < sizeof(nlmsghdr)) return bad("short netlink message");
  // A private copy: libmnl reads headers in place and wants them aligned.
  Bytes copy(message.begin(), message.end());
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(copy.data());
  if (nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > copy.size())
    return bad("netlink length out of bounds");
  if (nlh->nlmsg_type != XFRM_MSG_NEWSA && nlh->nlmsg_type != XFRM_MSG_UPDSA)
    return bad("not an SA message");
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(xfrm_usersa_info)) return bad("short SA message");
  xfrm_usersa_info info;
  std::memcpy(&info, mnl_nlmsg_get_payload(nlh), sizeof info);
  if (info.family != AF_INET && info.family != AF_INET6) return bad("unknown address family");

  XfrmSaInfo out;
  out.dst = from_xfrm(info.id.daddr, info.family);
  out.src = from_xfrm(info.saddr, info.family);
  out.spi = ntohl(info.id.spi);
  out.reqid = info.reqid;
  out.flags = info.flags;
  out.proto = info.id.proto;
  out.stats = SaStats{info.stats.replay_window, info.stats.replay, info.stats.integrity_failed};
  out.usage =
      SaUsage{info.curlft.bytes, info.curlft.packets, info.curlft.add_time, info.curlft.use_time};

  std::array<const nlattr*, XFRMA_MAX + 1> tb{};
  auto collect = [](const nlattr* a, void* data) -> int {
    // Attributes newer than our headers (the running kernel may be newer) are skipped.
    if (mnl_attr_type_valid(a, XFRMA_MAX) < 0) return MNL_CB_OK;
    (*static_cast<std::array<const nlattr*, XFRMA_MAX + 1>*>(data))[mnl_attr_get_type(a)] = a;
    return MNL_CB_OK;
  };
  if (mnl_attr_parse(nlh, sizeof(xfrm_usersa_info), collect, &tb) < 0)
    return bad("malformed attributes");

  if (const nlattr* a = tb[XFRMA_ENCAP]) {
    if (mnl_attr_get_payload_len(a) < sizeof(xfrm_encap_tmpl)) return bad("short XFRMA_ENCAP");
    xfrm_encap_tmpl e;
    std::memcpy(&e, mnl_attr_get_payload(a), sizeof e);
    out.encap_sport = ntohs(e.encap_sport);
    out.encap_dport = ntohs(e.encap_dport);
  }
  if (const nlattr* a = tb[XFRMA_LASTUSED]) {
    if (mnl_attr_get_payload_len(a) < sizeof(std::uint64_t)) return bad("short XFRMA_LASTUSED");
    std::memcpy(&out.last_used, mnl_attr_get_payload(a), sizeof out.last_used);
  }
  if (const nlattr* a = tb[XFRMA_REPLAY_ESN_VAL]) {
    std::size_t len = mnl_attr_get_payload_len(a);
    if (len < sizeof(xfrm_replay_state_esn)) return bad("short XFRMA_REPLAY_ESN_VAL");
    xfrm_replay_state_esn e;
    std::memcpy(&e, mnl_attr_get_payload(a), sizeof e);
    if (e.bmp_len > XFRMA_REPLAY_ESN_MAX / 32 || len < sizeof e + std::size_t{e.bmp_len} * 4)
      return bad("XFRMA_REPLAY_ESN_VAL bitmap out of bounds");
    SaReplayState r;
    r.esn_format = true;
    r.oseq = e.oseq, r.seq = e.seq, r.oseq_hi = e.oseq_hi, r.seq_hi = e.seq_hi;
    r.replay_window = e.replay_window;
    r.bitmap.resize(e.bmp_len);
    const auto* words = static_cast<const std::uint8_t*>(mnl_attr_get_payload(a)) + sizeof e;
    std::memcpy(r.bitmap.data(), words, r.bitmap.size() * 4);
    out.replay = std::move(r);
  } else if (const nlattr* a = tb[XFRMA_REPLAY_VAL]) {
    if (mnl_attr_get_payload_len(a) < sizeof(xfrm_replay_state))
      return bad("short XFRMA_REPLAY_VAL");
    xfrm_replay_state s;
    std::memcpy(&s, mnl_attr_get_payload(a), sizeof s);
    SaReplayState r;
    r.oseq = s.oseq, r.seq = s.seq;
    r.replay_window = info.replay_window;
    r.bitmap = {s.bitmap};
    out.replay = std::move(r);
  }
  return out;
}

std::string xfrm_message_name(std::uint16_t type) {
  switch (type) {
    case XFRM_MSG_NEWSA: return "XFRM_MSG_NEWSA";
    case XFRM_MSG_DELSA: return "XFRM_MSG_DELSA";
    case XFRM_MSG_GETSA: return "XFRM_MSG_GETSA";
    case XFRM_MSG_NEWPOLICY: return "XFRM_MSG_NEWPOLICY";
    case XFRM_MSG_DELPOLICY: return "XFRM_MSG_DELPOLICY";
    case XFRM_MSG_GETPOLICY: return "XFRM_MSG_GETPOLICY";
    case XFRM_MSG_UPDPOLICY: return "XFRM_MSG_UPDPOLICY";
    case XFRM_MSG_UPDSA: return "XFRM_MSG_UPDSA";
    case XFRM_MSG_MIGRATE: return "XFRM_MSG_MIGRATE";
    default: return "netlink message type " + std::to_string(type);
  }
}

std::vector<IpPrefix> range_to_prefixes(const IpAddress& first, const IpAddress& last) {
  std::vector<IpPrefix> out;
  if (first.family() != last.family()) return out;
  bool v4 = first.is_v4();
  unsigned width = v4 ? 32 : 128;
  split_range(to_int(first), to_int(last), width, [&](U128 start, unsigned host_bits) {
    out.push_back(IpPrefix{from_int(start, v4), static_cast<std::uint8_t>(width - host_bits)});
  });
  return out;
}

std::vector<PortBlock> port_range_to_blocks(std::uint16_t first, std::uint16_t last) {
  std::vector<PortBlock> out;
  split_range(first, last, 16, [&](U128 start, unsigned host_bits) {
    auto mask = static_cast<std::uint16_t>(~ones(host_bits) & 0xffff);
    out.push_back(PortBlock{static_cast<std::uint16_t>(start), mask});
  });
  return out;
}

Expected<std::vector<XfrmSelector>, SysError> selectors_for(const wire::TrafficSelector& from,
                                                            const wire::TrafficSelector& to) {
  std::vector<XfrmSelector> out;
  if (from.ts_type != to.ts_type) return out;
  if (from.ip_protocol != 0 && to.ip_protocol != 0 && from.ip_protocol != to.ip_protocol)
    return out;
  std::uint8_t proto = from.ip_protocol != 0 ? from.ip_protocol : to.ip_protocol;

  auto srcs = range_to_prefixes(from.start_address, from.end_address);
  auto dsts = range_to_prefixes(to.start_address, to.end_address);
  if (srcs.empty() || dsts.empty())
    return unexpected(
        invalid(EINVAL, "traffic selector with an empty or mixed-family address range"));

  struct Ports {
    PortBlock s, d;
  };
  std::vector<Ports> ports;
  if (is_icmp(proto)) {
    std::uint16_t lo = std::max(from.start_port, to.start_port);
    std::uint16_t hi = std::min(from.end_port, to.end_port);
    if (lo > hi) return out;
    for (auto b : port_range_to_blocks(lo, hi)) {
      ports.push_back(
          {PortBlock{static_cast<std::uint16_t>(b.value >> 8), byte_mask(b.mask >> 8)},
           PortBlock{static_cast<std::uint16_t>(b.value & 0xff), byte_mask(b.mask & 0xff)}});
    }
  } else {
    auto sp = port_range_to_blocks(from.start_port, from.end_port);
    auto dp = port_range_to_blocks(to.start_port, to.end_port);
    if (sp.empty() || dp.empty())
      return unexpected(invalid(EINVAL, "traffic selector with an empty port range"));
    for (auto s : sp)
      for (auto d : dp) ports.push_back({s, d});
  }
  if (srcs.size() * dsts.size() * ports.size() > kMaxSelectorsPerPair)
    return unexpected(invalid(E2BIG, "traffic selector pair needs " +
                                         std::to_string(srcs.size() * dsts.size() * ports.size()) +
                                         " kernel selectors"));
  for (const auto& s : srcs)
    for (const auto& d : dsts)
      for (const auto& p : ports)
        out.push_back(XfrmSelector{s, d, proto, p.s.value, p.s.mask, p.d.value, p.d.mask});
  return out;
}

std::uint32_t default_priority(const XfrmSelector& s) {
  // Kernel policies are tried by priority, lower first; among overlapping selectors
  // the narrower must win, so each prefix bit counts more than protocol and ports.
  std::uint32_t specificity = 4u * (s.src.length + s.dst.length) + (s.proto != 0 ? 2 : 0) +
                              (s.sport_mask != 0 ? 1 : 0) + (s.dport_mask != 0 ? 1 : 0);
  return 2048 - specificity;
}

}  // namespace mobike::platform
