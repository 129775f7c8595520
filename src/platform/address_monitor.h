// Local address monitoring through rtnetlink: which addresses this host can use as IKE
// endpoints right now, and when that changes (MOBIKE, RFC 4555 §3.5: a host must learn of
// address changes to update its SAs).
//
// Three layers, so everything but the socket is testable without a kernel:
//   parse_rtnl_buffer()  bytes -> typed link / address / route messages (bounds-checked)
//   AddressTable         applies those messages to the link and address tables and says
//                        what changed (typed AddressEvents); snapshot() = usable set
//   AddressMonitor       the NETLINK_ROUTE socket: initial dump, then notifications
// plus Debouncer, which turns a burst of events into one "address set changed"
// notification on an injected clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "common/bytes.h"
#include "common/expected.h"
#include "common/ip_address.h"
#include "platform/sys_error.h"

struct mnl_socket;

namespace mobike::platform {

// --------------------------------------------------------------------------- parsing

// RTM_NEWLINK / RTM_DELLINK.
struct RtnlLink {
  bool removed = false;
  int ifindex = 0;
  std::string name;                     // IFLA_IFNAME; may be empty on RTM_DELLINK
  std::uint32_t flags = 0;              // ifi_flags: IFF_UP, IFF_RUNNING, IFF_LOOPBACK...
  std::optional<std::uint8_t> operstate;  // IFLA_OPERSTATE (IF_OPER_*), when present
  friend bool operator==(const RtnlLink&, const RtnlLink&) = default;
};

// RTM_NEWADDR / RTM_DELADDR, AF_INET and AF_INET6 only.
struct RtnlAddress {
  bool removed = false;
  IpAddress address;  // IFA_LOCAL if present (IFA_ADDRESS is the peer on point-to-point)
  std::uint8_t prefix_len = 0;
  int ifindex = 0;
  std::uint32_t flags = 0;  // IFA_FLAGS when present (32 bits), else the 8-bit ifa_flags
  std::uint8_t scope = 0;   // RT_SCOPE_*
  friend bool operator==(const RtnlAddress&, const RtnlAddress&) = default;
};

// RTM_NEWROUTE / RTM_DELROUTE, AF_INET and AF_INET6 only.
struct RtnlRoute {
  bool removed = false;
  IpPrefix dst;              // ::/0 or 0.0.0.0/0 without RTA_DST
  std::uint32_t table = 0;   // RTA_TABLE when present, else rtm_table
  std::uint8_t type = 0;     // RTN_*
  std::uint32_t flags = 0;   // rtm_flags (RTM_F_CLONED...)
  std::optional<int> oif;    // RTA_OIF
  friend bool operator==(const RtnlRoute&, const RtnlRoute&) = default;
};

struct RtnlDone {
  int error = 0;  // negative errno when the dump failed part-way
};
struct RtnlError {
  int error = 0;  // negative errno, 0 for an ACK
};
// Well-formed but of no interest (another message type or address family).
struct RtnlIgnored {};

using RtnlBody = std::variant<RtnlLink, RtnlAddress, RtnlRoute, RtnlDone, RtnlError, RtnlIgnored>;

struct RtnlMessage {
  std::uint16_t type = 0;
  std::uint16_t flags = 0;
  std::uint32_t seq = 0;
  std::uint32_t pid = 0;
  RtnlBody body;
};

// Exactly one netlink message: `msg` must hold nlmsg_len bytes (more is an error too, so
// that a caller cannot mistake a batch for one message). The reason on failure.
Expected<RtnlMessage, std::string> parse_rtnl_message(ByteView msg);

struct RtnlBatch {
  std::vector<RtnlMessage> messages;
  // One entry per rejected message. A broken nlmsg_len also ends the walk, since the
  // next message's start is then unknown.
  std::vector<std::string> errors;
};
// A whole datagram from a netlink socket: any number of messages.
RtnlBatch parse_rtnl_buffer(ByteView datagram);

// --------------------------------------------------------------------------- state

// Why an address is visible but not usable as an IKE endpoint.
enum class AddressStatus : std::uint8_t {
  kUsable,
  // A global address on a loopback device: a routed or anycast service address, which
  // reaches peers through whatever routes the operator set up. In the usable set,
  // marked on_loopback: only connections that name it use it.
  kOnLoopback,
  kDadFailed,  // IPv6 duplicate address detection failed
  kTentative,  // IPv6 DAD still running: the kernel does not let us send from it yet
  kLoopback,   // 127/8, ::1 or host scope: reaches no peer
  kLinkLocal,  // 169.254/16, fe80::/10 or link scope: no use for a peer behind a router
  kLinkDown,   // the interface is down or has no carrier
  kNoLink,     // the interface is unknown (its RTM_NEWLINK was not seen)
};
const char* to_string(AddressStatus s);

struct LocalAddress {
  IpAddress address;
  std::uint8_t prefix_len = 0;
  int ifindex = 0;
  std::string ifname;
  std::uint32_t flags = 0;  // IFA_F_*
  std::uint8_t scope = 0;
  bool on_loopback = false;  // in snapshots: the address's status is kOnLoopback

  bool deprecated() const;  // IPv6 preferred lifetime over: usable, but prefer others
  bool temporary() const;   // IPv6 privacy address
  std::string to_string() const;  // 192.0.2.1/24%eth0 [deprecated]
  friend auto operator<=>(const LocalAddress&, const LocalAddress&) = default;
  friend bool operator==(const LocalAddress&, const LocalAddress&) = default;
};

// Sorted by address; one entry per (address, prefix, interface).
using AddressSet = std::vector<LocalAddress>;

struct Link {
  int ifindex = 0;
  std::string name;
  std::uint32_t flags = 0;
  std::optional<std::uint8_t> operstate;
  // Administratively up with carrier: IFF_UP and IFF_RUNNING, and an operstate (if
  // given) of UP or UNKNOWN (what loopback and tun devices report).
  bool up() const;
  bool loopback() const;
  friend bool operator==(const Link&, const Link&) = default;
};

struct AddressAdded {
  LocalAddress address;
  AddressStatus status = AddressStatus::kUsable;
};
struct AddressRemoved {
  LocalAddress address;
  AddressStatus status = AddressStatus::kUsable;  // as it was
};
// Same address, prefix and interface, other flags or scope (DAD done, now deprecated,
// interface renamed...).
struct AddressChanged {
  LocalAddress before, after;
  AddressStatus status = AddressStatus::kUsable;  // after the change
};
struct LinkUp {
  int ifindex = 0;
  std::string name;
};
struct LinkDown {
  int ifindex = 0;
  std::string name;
};
// A route outside the local table was added or removed: the source address the kernel
// picks for a peer (route.h) may now be another one.
struct RoutesChanged {
  AddressFamily family = AddressFamily::kV4;
};
using AddressEvent = std::variant<AddressAdded, AddressRemoved, AddressChanged, LinkUp, LinkDown, RoutesChanged>;
std::string to_string(const AddressEvent& e);

// The links and addresses the kernel told us about. No system calls.
class AddressTable {
 public:
  // Applies one message; appends what changed to `events` (nothing for a repeat of the
  // known state: the kernel re-sends RTM_NEWADDR on every IPv6 lifetime refresh).
  void apply(const RtnlMessage& m, std::vector<AddressEvent>& events);
  // Becomes `fresh` (a new dump, after notifications were lost) and reports the
  // difference as if it had been notified, plus RoutesChanged for both families since
  // route notifications may have been lost as well.
  void replace(AddressTable fresh, std::vector<AddressEvent>& events);

  AddressStatus status(const LocalAddress& a) const;
  // Routes out of this link are not reported (RoutesChanged): the userspace data plane's
  // TUN device, whose routes to the tunnels' inner addresses never lead to a peer and
  // change with every Child SA (thousands in a cluster drain).
  void ignore_routes_via(std::string link_name) { ignored_route_links_.push_back(std::move(link_name)); }
  // The usable addresses (kUsable and kOnLoopback), sorted.
  AddressSet snapshot() const;
  // Every known address, usable or not, sorted.
  AddressSet addresses() const;
  const std::map<int, Link>& links() const { return links_; }

 private:
  using Key = std::tuple<IpAddress, std::uint8_t, int>;  // address, prefix, ifindex
  void apply_link(const RtnlLink& l, std::vector<AddressEvent>& events);
  void apply_address(const RtnlAddress& a, std::vector<AddressEvent>& events);
  std::map<int, Link> links_;
  std::map<Key, LocalAddress> addresses_;
  std::vector<std::string> ignored_route_links_;
};

// --------------------------------------------------------------------------- debouncing

struct AddressSetChange {
  AddressSet before;  // usable set of the previous notification (or the initial one)
  AddressSet after;   // usable set now
  bool routes_changed = false;
  std::vector<AddressEvent> events;  // everything coalesced into this notification
};

// Coalesces a burst of events (an interface going down drops several addresses and
// routes within milliseconds) into one notification, so the engine does one
// UPDATE_SA_ADDRESSES round instead of several. Sans-IO: time is passed in.
class Debouncer {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  struct Config {
    std::chrono::milliseconds quiet{100};       // notify once no event came for this long
    std::chrono::milliseconds max_delay{1000};  // ...but never later than this after the first
  };

  explicit Debouncer(AddressSet initial);
  Debouncer(AddressSet initial, Config config);

  // One event; `current` is the usable set after it.
  void feed(const AddressEvent& event, const AddressSet& current, TimePoint now);
  void feed(std::span<const AddressEvent> events, const AddressSet& current, TimePoint now);

  // When due() should be asked next; nullopt while nothing is pending.
  std::optional<TimePoint> next_deadline() const;
  // The coalesced change once the burst is over. nullopt while it is not, and also when
  // the burst ended where it started (an address added and removed again) without a
  // route change: there is nothing for the engine to do.
  std::optional<AddressSetChange> due(TimePoint now);

  const AddressSet& last_notified() const { return before_; }

 private:
  Config config_;
  AddressSet before_;
  AddressSet current_;
  bool pending_ = false;
  bool routes_changed_ = false;
  TimePoint first_{};
  TimePoint last_{};
  std::vector<AddressEvent> events_;
};

// --------------------------------------------------------------------------- the socket

class AddressMonitor {
 public:
  // A non-blocking NETLINK_ROUTE socket subscribed to link, address and route changes of
  // both families. Subscribes before any dump, so nothing between dump and
  // notifications is missed.
  static Expected<AddressMonitor, SysError> open();
  AddressMonitor() = default;
  AddressMonitor(AddressMonitor&& o) noexcept;
  AddressMonitor& operator=(AddressMonitor&& o) noexcept;
  AddressMonitor(const AddressMonitor&) = delete;
  AddressMonitor& operator=(const AddressMonitor&) = delete;
  ~AddressMonitor();

  int fd() const;
  // The socket's receive queue in bytes (open() asks for 1 MiB). Smaller means overruns,
  // and re-dumps, sooner. FORCE needs CAP_NET_ADMIN; without it rmem_max caps the size.
  Expected<void, SysError> set_receive_buffer(int bytes);
  // Reads all links and addresses (RTM_GETLINK, RTM_GETADDR dumps) into the table,
  // replacing what was there. The returned events are the difference to the previous
  // table (everything, on the first call).
  Expected<std::vector<AddressEvent>, SysError> dump();
  // Reads every pending notification and returns what changed since the last call.
  // When the kernel dropped notifications (ENOBUFS), re-dumps and reports the
  // difference, so the table never silently drifts from the kernel's.
  Expected<std::vector<AddressEvent>, SysError> process();

  AddressSet snapshot() const { return table_.snapshot(); }
  void ignore_routes_via(std::string link_name) { table_.ignore_routes_via(std::move(link_name)); }
  const AddressTable& table() const { return table_; }
  // Messages rejected by the parser so far (kernel or not, they are ignored).
  std::uint64_t malformed() const { return malformed_; }
  std::uint64_t resyncs() const { return resyncs_; }

 private:
  mnl_socket* nl_ = nullptr;
  AddressTable table_;
  std::vector<std::uint8_t> buf_;
  std::uint64_t malformed_ = 0;
  std::uint64_t resyncs_ = 0;
};

}  // namespace mobike::platform
