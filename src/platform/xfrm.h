// The Linux kernel IPsec backend (dataplane = "xfrm"): a NETLINK_XFRM socket and the
// facade the daemon maps DataplaneOp onto.
//
// A Child SA becomes two ESP tunnel-mode SAs (inbound with our SPI, outbound with the
// peer's) and, for every pair of traffic selectors, policies in the out, in and fwd
// directions whose templates name the SA pair's reqid. Child SAs with the same traffic
// selectors (a rekey and the SA it replaces) share a reqid and the policies: the kernel
// then sends on the newest outbound SA and accepts both inbound SAs until the old one is
// removed. Policies are reference-counted and deleted with their last Child SA.
//
// Address changes (MOBIKE) try XFRM_MSG_MIGRATE first, which moves a policy's template
// and the SAs with the old addresses in one step and keeps their sequence numbers. If
// the kernel refuses (no CONFIG_XFRM_MIGRATE: ENOPROTOOPT; policy not found: ENOENT; SA
// clash: ENODATA) or cannot express the change (UDP encapsulation removed), policies are
// replaced with XFRM_MSG_UPDPOLICY and each SA is re-created at its new addresses with
// the counters read back from the kernel (GETSA, NEWSA with the replay state and
// lifetime counters, DELSA). XFRM_MSG_UPDSA alone cannot do it: the kernel finds the SA
// to update by (destination, SPI) and only replaces its encapsulation ports and limits,
// which is what it is used for here (a NAT mapping's port changed).
#pragma once

#include <cerrno>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/expected.h"
#include "common/ip_address.h"
#include "platform/sys_error.h"
#include "platform/xfrm_messages.h"
#include "wire/payloads.h"

struct mnl_socket;

namespace mobike::platform {

// Where XFRM requests go: XfrmSocket in the daemon, a scripted fake in tests.
class XfrmTransport {
 public:
  virtual ~XfrmTransport() = default;
  // Sends a request built with NLM_F_ACK and waits for the kernel's verdict. The
  // error's context names the message and carries the kernel's extended-ack text.
  virtual Expected<void, SysError> request(ByteView message) = 0;
  // Sends a GET request and returns the single reply message.
  virtual Expected<Bytes, SysError> query(ByteView message) = 0;
  // Sends a request with NLM_F_DUMP and returns every message of the answer up to
  // NLMSG_DONE. Transports that cannot: EOPNOTSUPP.
  virtual Expected<std::vector<Bytes>, SysError> dump(ByteView message) {
    (void)message;
    return unexpected(SysError{EOPNOTSUPP, "xfrm dump"});
  }
};

// A NETLINK_XFRM socket (libmnl). Blocking, with a receive timeout so that a kernel that
// never answers cannot hang the caller; answers to earlier requests (after a timeout)
// are recognised by their sequence number and skipped.
class XfrmSocket final : public XfrmTransport {
 public:
  static Expected<XfrmSocket, SysError> open();

  XfrmSocket(XfrmSocket&&) noexcept = default;
  XfrmSocket& operator=(XfrmSocket&&) noexcept = default;
  ~XfrmSocket() override = default;

  Expected<void, SysError> request(ByteView message) override;
  Expected<Bytes, SysError> query(ByteView message) override;
  Expected<std::vector<Bytes>, SysError> dump(ByteView message) override;

 private:
  struct Closer {
    void operator()(mnl_socket* s) const;
  };
  XfrmSocket() = default;
  Expected<void, SysError> exchange(ByteView message, Bytes* reply, std::vector<Bytes>* parts = nullptr);

  std::unique_ptr<mnl_socket, Closer> nl_;
  unsigned portid_ = 0;
  std::uint32_t seq_ = 0;
  Bytes buf_;  // receive buffer, reused
};

struct XfrmEvents {
  std::vector<XfrmMapping> mappings;
  std::vector<XfrmExpire> expires;
  std::vector<XfrmAcquire> acquires;
};

// What the kernel reports on its own: a NETLINK_XFRM socket joined to the MAPPING,
// EXPIRE and ACQUIRE groups, non-blocking, for the daemon's event loop.
class XfrmEventSocket {
 public:
  static Expected<XfrmEventSocket, SysError> open();
  XfrmEventSocket(XfrmEventSocket&&) noexcept = default;
  XfrmEventSocket& operator=(XfrmEventSocket&&) noexcept = default;

  int fd() const;
  // Every event waiting on the socket; other messages are skipped, malformed ones
  // counted in `malformed`.
  XfrmEvents read(std::uint64_t& malformed);

 private:
  struct Closer {
    void operator()(mnl_socket* s) const;
  };
  XfrmEventSocket() = default;
  std::unique_ptr<mnl_socket, Closer> nl_;
  Bytes buf_;
};

// Exempts a socket's own traffic (IKE) from IPsec policies, in both directions: a
// policy covering the peer's address (0.0.0.0/0, or a host-to-host Child SA) would
// otherwise tunnel or drop IKE itself. Works on kernels without ESP.
Expected<void, SysError> xfrm_bypass_socket(int fd, AddressFamily family);
// UDP_ENCAP_ESPINUDP on the NAT-T socket (RFC 3948): the kernel then takes ESP packets
// arriving on it into XFRM, while IKE messages (non-ESP marker) still reach the socket.
Expected<void, SysError> xfrm_enable_udp_encap(int fd);

// A Child SA as the data plane needs it (the daemon fills it from DataplaneOp).
struct XfrmChild {
  Endpoint local, remote;  // IKE endpoints; the ports matter with udp_encap
  std::uint32_t spi_in = 0, spi_out = 0;
  bool udp_encap = false;
  std::vector<wire::TrafficSelector> local_ts, remote_ts;
  EspTransforms in, out;  // the same algorithms, each direction's keys
  SaLifetime lifetime;
  std::uint32_t replay_window = 32;
};

// One SA of a Child SA, by what the kernel finds it by (destination, SPI).
struct XfrmSaRef {
  std::uint64_t child_id = 0;
  IpAddress dst;
  std::uint32_t spi = 0;
  bool inbound = false;
};

struct XfrmChildUsage {
  SaUsage in, out;
  SaStats in_stats;  // the inbound SA's replay and integrity drops
};

// /proc/net/xfrm_stat (CONFIG_XFRM_STATISTICS): the namespace's XFRM error counters,
// one "Name<whitespace>value" line each, in the file's order. Lines that are not
// that are skipped.
std::vector<std::pair<std::string, std::uint64_t>> parse_xfrm_stat(std::string_view text);
// Reads and parses the file (ENOENT on a kernel without XFRM statistics).
Expected<std::vector<std::pair<std::string, std::uint64_t>>, SysError> read_xfrm_stat(
    const char* path = "/proc/net/xfrm_stat");

// How update_addresses() got there, for logs and tests.
struct XfrmUpdateReport {
  std::size_t policies_migrated = 0;      // XFRM_MSG_MIGRATE
  std::size_t policies_replaced = 0;      // XFRM_MSG_UPDPOLICY
  std::size_t sas_updated = 0;            // XFRM_MSG_UPDSA (encapsulation ports only)
  std::size_t sas_reinstalled = 0;        // GETSA + NEWSA + DELSA
  std::optional<SysError> migrate_error;  // why MIGRATE was not used, if it was refused
};

// The kernel's SAs and policies of our Child SAs: one entry per Child SA, installed,
// moved and removed as a whole.
class XfrmChildSas {
 public:
  // `kernel` must outlive the data plane. Reqids are allocated from first_reqid up.
  explicit XfrmChildSas(XfrmTransport& kernel, std::uint32_t first_reqid = 1);

  // Installs both SAs, then the policies (an outbound policy without its SA would make
  // the kernel drop traffic and ask for a new SA). On failure, what this call installed
  // is removed again. With `outbound` false only the inbound SA goes in (the responder
  // of a rekey: the kernel sends on the newest outbound SA of a reqid, and the
  // initiator cannot decrypt it before it has our response); activate_outbound() adds
  // the outbound SA later, at the addresses the Child SA has by then.
  Expected<void, SysError> install(std::uint64_t child_id, const XfrmChild& child, bool outbound = true);
  Expected<void, SysError> activate_outbound(std::uint64_t child_id);
  bool outbound_active(std::uint64_t child_id) const;
  // Removes the SAs, then the policies no other Child SA uses. SAs the kernel already
  // expired are not an error. Keeps going after a failure and reports the first one.
  // With `last`: each SA's counters are read (GETSA) right before its delete, since
  // the kernel forgets them with the SA; an SA already gone (a hard expire) counts
  // nothing and is added to `gone`, if given.
  Expected<void, SysError> remove(std::uint64_t child_id, XfrmChildUsage* last = nullptr,
                                  std::vector<XfrmSaRef>* gone = nullptr);
  Expected<void, SysError> remove_all();
  // Moves the Child SA (both SAs and its policies) to new outer addresses/ports and
  // encapsulation; see the header comment for the strategy.
  Expected<XfrmUpdateReport, SysError> update_addresses(std::uint64_t child_id,
                                                        const Endpoint& local,
                                                        const Endpoint& remote, bool udp_encap);
  // The kernel's byte/packet counters and times of both SAs (for rekeying on volume).
  Expected<XfrmChildUsage, SysError> usage(std::uint64_t child_id);
  // The counters of every installed Child SA from a single dump of the kernel's SAs,
  // however many there are (the metrics scrape runs on the event loop). SAs that are
  // not ours are skipped; a Child SA whose SAs the kernel no longer has (a hard
  // expire) is missing or has zeros for the missing direction.
  Expected<std::map<std::uint64_t, XfrmChildUsage>, SysError> usage_all();

  bool contains(std::uint64_t child_id) const { return children_.count(child_id) != 0; }
  // A trap (start = "trap"): the policies a Child SA with these selectors and outer
  // addresses would have (only `local`, `remote`, `local_ts`, `remote_ts` of `shape`
  // count), without SAs, so that the kernel reports matching traffic (ACQUIRE). They
  // share the reqid and the policy records of such a Child SA: its install satisfies
  // the trap, and its removal leaves the trap in place.
  Expected<void, SysError> install_trap(std::uint64_t trap_id, const XfrmChild& shape);
  Expected<void, SysError> remove_trap(std::uint64_t trap_id);
  // The trap one of whose outbound policies has this selector.
  std::optional<std::uint64_t> find_trap(const XfrmSelector& out_selector) const;
  std::size_t trap_count() const { return traps_.size(); }

  // The Child SA one of whose SAs is (dst, spi), if it is ours.
  std::optional<std::uint64_t> find_by_sa(const IpAddress& dst, std::uint32_t spi) const;
  // The same, with the SA's direction.
  std::optional<XfrmSaRef> find_sa(const IpAddress& dst, std::uint32_t spi) const;
  std::optional<std::uint32_t> reqid(std::uint64_t child_id) const;
  // The policies currently installed through this object.
  std::vector<XfrmPolicy> policies() const;

 private:
  struct PolicyKey {
    XfrmSelector selector;
    XfrmDir dir = XfrmDir::kOut;
  };
  struct PolicyKeyLess {
    bool operator()(const PolicyKey& a, const PolicyKey& b) const;
  };
  struct PolicyRecord {
    XfrmPolicy policy;
    int refs = 0;
  };
  struct ReqidRecord {
    std::uint32_t reqid = 0;
    int refs = 0;
  };
  struct Installed {
    XfrmChild child;
    std::uint32_t reqid = 0;
    std::string reqid_key;
    std::vector<PolicyKey> policies;
    bool outbound = true;  // the outbound SA is in the kernel
  };

  static XfrmSa sa_of(const XfrmChild& c, std::uint32_t reqid, bool inbound);
  std::uint32_t acquire_reqid(const std::string& key);
  void release_reqid(const std::string& key);
  // Drops one reference; deletes the kernel policy with the last one.
  Expected<void, SysError> release_policy(const PolicyKey& key);
  Expected<bool, SysError> move_sa(const Installed& st, bool inbound, const XfrmChild& target,
                                   XfrmUpdateReport& report);

  XfrmTransport& kernel_;
  std::uint32_t next_reqid_;
  bool migrate_supported_ = true;
  std::map<std::uint64_t, Installed> children_;
  struct Trap {
    std::string reqid_key;
    std::vector<PolicyKey> policies;
  };
  std::map<std::uint64_t, Trap> traps_;
  std::map<PolicyKey, PolicyRecord, PolicyKeyLess> policies_;
  std::map<std::string, ReqidRecord> reqids_;
};

}  // namespace mobike::platform
