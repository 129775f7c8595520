// The engine fed arbitrary datagrams: first byte picks the target — a fresh responder
// (IKE_SA_INIT paths, cookies, error answers) or one side of an established IKE SA with
// the right SPIs patched in, so that message-ID checks, integrity checks and the
// cached-response path see the input. Each input starts from the same state.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "ike/proposal_string.h"
#include "sim_network.h"

using namespace mobike;

namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

bool established(sim::Host& a, sim::Host& b) {
  auto* x = sim::only_sa(a);
  auto* y = sim::only_sa(b);
  return x && y && x->state == ike::IkeState::kEstablished && y->state == ike::IkeState::kEstablished;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::uint8_t mode = data[0] % 3;
  ByteView input(data + 1, size - 1);
  sim::Network net;
  ike::EngineConfig cfg;
  cfg.half_open_threshold = data[0] & 0x80 ? 0 : 1000;  // sometimes demand cookies
  sim::Host& ini = net.add_host("ini", {ip("198.51.100.3")}, {}, 1);
  sim::Host& res = net.add_host("res", {ip("198.51.100.10")}, cfg, 2);
  ini.engine->set_connections({sim::psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test")});
  res.engine->set_connections({sim::psk_connection("gw", "%any", "res@example.test", "ini@example.test")});
  if (mode == 0) {
    res.engine->on_datagram({ip("198.51.100.10"), 500}, {ip("198.51.100.3"), 500}, input, net.now());
    net.collect(res);
    net.run_for(ike::Duration(1000));
    return 0;
  }
  if (!ini.engine->initiate("home", ip("198.51.100.3"), net.now())) std::abort();
  net.collect(ini);
  if (!net.run_until([&] { return established(ini, res); }, ike::Duration(10000))) std::abort();
  sim::Host& target = mode == 1 ? res : ini;
  sim::Host& peer = mode == 1 ? ini : res;
  const ike::IkeSa* sa = sim::only_sa(target);
  Bytes msg(input.begin(), input.end());
  if (msg.size() >= 16) {
    for (int k = 0; k < 8; ++k) msg[k] = static_cast<std::uint8_t>(sa->spi_i >> (56 - 8 * k));
    for (int k = 0; k < 8; ++k) msg[8 + k] = static_cast<std::uint8_t>(sa->spi_r >> (56 - 8 * k));
  }
  target.engine->on_datagram(sa->local, sa->remote, msg, net.now());
  net.collect(target);
  // Whatever the input did, the SA must still work: a liveness-checking delete.
  if (auto* s = sim::only_sa(peer); s && s->state == ike::IkeState::kEstablished) {
    peer.engine->terminate_ike(s->id, net.now());
    net.collect(peer);
    net.run_for(ike::Duration(60000));
  }
  return 0;
}
