// The address monitor (AddressMonitor + Debouncer) on the real kernel, for
// tests/netns/test_address_monitor.py. Runs until killed; one JSON object per line:
//
//   {"type":"snapshot","usable":[A...],"visible":[A...],"links":[L...]}   once, first
//   {"type":"event","text":"address added ...","kind":"address_added","address":A}
//                                          every event as process() reports it
//   {"type":"change","before":[A...],"after":[A...],"routes_changed":B,"events":N,
//    "resyncs":N}                          every debounced notification; resyncs counts
//                                          re-dumps after lost notifications so far
//   {"type":"error","message":"..."}       then exit 1
//
// A = {"addr","prefix","ifindex","ifname","status","deprecated","tentative"},
// L = {"ifindex","name","up"}.
//
//   addrmon_probe [--quiet-ms N] [--max-ms N] [--rcvbuf BYTES] [--stall-ms N]
// --rcvbuf shrinks the socket's queue and --stall-ms sleeps after the snapshot, so that
// a test can make the kernel drop notifications and see the monitor recover.
#include <poll.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <variant>

#include "platform/address_monitor.h"

using namespace mobike;
using namespace mobike::platform;

namespace {

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string address_json(const LocalAddress& a, AddressStatus status) {
  return "{\"addr\":" + quoted(a.address.to_string()) + ",\"prefix\":" + std::to_string(a.prefix_len) +
         ",\"ifindex\":" + std::to_string(a.ifindex) + ",\"ifname\":" + quoted(a.ifname) +
         ",\"status\":" + quoted(to_string(status)) + ",\"deprecated\":" + (a.deprecated() ? "true" : "false") +
         ",\"tentative\":" + (status == AddressStatus::kTentative ? "true" : "false") + "}";
}

// Without a table the set is a usable set (of then, which the table may no longer know).
std::string set_json(const AddressSet& set, const AddressTable* table = nullptr) {
  std::string out = "[";
  for (const auto& a : set) {
    if (out.size() > 1) out += ',';
    out += address_json(a, table ? table->status(a) : AddressStatus::kUsable);
  }
  return out + "]";
}

std::string event_json(const AddressEvent& e) {
  struct Visitor {
    std::string operator()(const AddressAdded& a) {
      return "\"kind\":\"address_added\",\"address\":" + address_json(a.address, a.status);
    }
    std::string operator()(const AddressRemoved& a) {
      return "\"kind\":\"address_removed\",\"address\":" + address_json(a.address, a.status);
    }
    std::string operator()(const AddressChanged& a) {
      return "\"kind\":\"address_changed\",\"address\":" + address_json(a.after, a.status);
    }
    std::string operator()(const LinkUp& l) { return "\"kind\":\"link_up\",\"ifname\":" + quoted(l.name); }
    std::string operator()(const LinkDown& l) { return "\"kind\":\"link_down\",\"ifname\":" + quoted(l.name); }
    std::string operator()(const RoutesChanged&) { return "\"kind\":\"routes_changed\""; }
  };
  return "{\"type\":\"event\",\"text\":" + quoted(to_string(e)) + "," + std::visit(Visitor{}, e) + "}";
}

[[noreturn]] void fail(const std::string& message) {
  std::cout << "{\"type\":\"error\",\"message\":" << quoted(message) << "}" << std::endl;
  std::exit(1);
}

bool parse_number(const char* s, unsigned& out) {
  auto end = s + std::strlen(s);
  auto [p, ec] = std::from_chars(s, end, out);
  return ec == std::errc() && p == end && p != s;
}

}  // namespace

int main(int argc, char** argv) {
  Debouncer::Config config;
  unsigned quiet = 100, max_delay = 1000, rcvbuf = 0, stall = 0;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    bool ok = i + 1 < argc;
    if (ok && arg == "--quiet-ms")
      ok = parse_number(argv[++i], quiet);
    else if (ok && arg == "--max-ms")
      ok = parse_number(argv[++i], max_delay);
    else if (ok && arg == "--rcvbuf")
      ok = parse_number(argv[++i], rcvbuf);
    else if (ok && arg == "--stall-ms")
      ok = parse_number(argv[++i], stall);
    else
      ok = false;
    if (!ok) {
      std::cerr << "usage: addrmon_probe [--quiet-ms N] [--max-ms N] [--rcvbuf BYTES] [--stall-ms N]\n";
      return 2;
    }
  }

  config.quiet = std::chrono::milliseconds(quiet);
  config.max_delay = std::chrono::milliseconds(max_delay);

  auto monitor = AddressMonitor::open();
  if (!monitor) fail(monitor.error().message());
  if (rcvbuf > 0) {
    auto r = monitor->set_receive_buffer(static_cast<int>(std::min(rcvbuf, 1u << 30)));
    if (!r) fail(r.error().message());
  }
  if (auto d = monitor->dump(); !d) fail(d.error().message());
  const AddressTable& table = monitor->table();

  std::string links = "[";
  for (const auto& [ifindex, l] : table.links()) {
    if (links.size() > 1) links += ',';
    links += "{\"ifindex\":" + std::to_string(ifindex) + ",\"name\":" + quoted(l.name) +
             ",\"up\":" + (l.up() ? "true" : "false") + "}";
  }
  links += "]";
  std::cout << "{\"type\":\"snapshot\",\"usable\":" << set_json(monitor->snapshot())
            << ",\"visible\":" << set_json(table.addresses(), &table) << ",\"links\":" << links << "}" << std::endl;

  Debouncer debouncer(monitor->snapshot(), config);
  if (stall > 0) std::this_thread::sleep_for(std::chrono::milliseconds(stall));
  for (;;) {
    int timeout = -1;
    if (auto deadline = debouncer.next_deadline()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Debouncer::Clock::now());
      timeout = static_cast<int>(std::max<std::chrono::milliseconds::rep>(left.count(), 0));
    }
    pollfd pfd{monitor->fd(), POLLIN, 0};
    int n = ::poll(&pfd, 1, timeout);
    if (n < 0 && errno != EINTR) fail(std::string("poll: ") + std::strerror(errno));
    if (n > 0) {
      auto events = monitor->process();
      if (!events) fail(events.error().message());
      for (const auto& e : *events) std::cout << event_json(e) << "\n";
      debouncer.feed(*events, monitor->snapshot(), Debouncer::Clock::now());
      std::cout.flush();
    }
    if (auto change = debouncer.due(Debouncer::Clock::now())) {
      std::cout << "{\"type\":\"change\",\"before\":" << set_json(change->before)
                << ",\"after\":" << set_json(change->after)
                << ",\"routes_changed\":" << (change->routes_changed ? "true" : "false")
                << ",\"events\":" << change->events.size() << ",\"resyncs\":" << monitor->resyncs() << "}"
                << std::endl;
    }
  }
}
