// Heap bytes per Child SA in the userspace data plane's SA table (src/esp), the part of
// a gateway's memory per SA that dataplane = "userspace" adds (bench/cluster, memory).
//
//   cmake --build build/release --target esp_memory
//   build/release/bench/esp_memory [N] [suite: aes128gcm16 | aes256gcm16 |
//                                       chacha20poly1305 | aes128-sha256 | aes256-sha512]
//
// Installs N Child SAs as a gateway's SaTable holds them (one /32 remote selector per
// client, one local range) and prints glibc's allocated bytes (mallinfo2().uordblks)
// before and after, divided by N, plus the sizes of the per-SA objects. That is an idle
// Child SA: its cipher contexts come with its first packets (and go again after
// cipher_idle_release), so one packet is then sent out of every SA to measure what a
// keyed direction adds. Release build without sanitizers: their allocators make
// mallinfo2 meaningless.
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <algorithm>

#include "crypto/random.h"
#include "esp/sa_table.h"
#include "esp_suites.h"

namespace {

using namespace mobike;
using namespace mobike::esp;

using bench::kSuites;
using bench::Suite;

std::size_t heap_in_use() { return mallinfo2().uordblks; }

wire::TrafficSelector range(IpAddress a, IpAddress b) {
  wire::TrafficSelector t;
  t.start_address = a;
  t.end_address = b;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 10000;
  const Suite* s = &kSuites[0];
  if (argc > 2) {
    s = nullptr;
    for (const auto& c : kSuites)
      if (std::strcmp(c.name, argv[2]) == 0) s = &c;
    if (!s) {
      std::fprintf(stderr, "unknown suite %s\n", argv[2]);
      return 2;
    }
  }
  crypto::SeededRandom rnd(1);
  const Bytes ei = rnd.bytes(s->encr_len), eo = rnd.bytes(s->encr_len);
  const Bytes ii = rnd.bytes(s->integ_len), io = rnd.bytes(s->integ_len);

  SaTable table;
  // Warm up what is allocated once per process (OpenSSL's provider and fetched
  // ciphers, the tables' first buckets), then measure from there.
  auto spec_for = [&](std::size_t i) {
    ChildSaSpec spec;
    spec.child_sa_id = i + 1;
    spec.ike_sa_id = i + 1;
    for (EspSaParams* p : {&spec.in, &spec.out}) {
      p->encr_id = s->encr;
      p->encr_key_bits = s->bits;
      p->integ_id = s->integ;
    }
    spec.in.spi = static_cast<std::uint32_t>(0x10000000 + i);
    spec.out.spi = static_cast<std::uint32_t>(0x20000000 + i);
    spec.in.encr_key = ei;
    spec.in.integ_key = ii;
    spec.out.encr_key = eo;
    spec.out.integ_key = io;
    spec.path.local = {IpAddress::v4(0xc6336401), 4500};
    spec.path.remote = {IpAddress::v4(0xc6336402), static_cast<std::uint16_t>(1024 + i % 60000)};
    spec.path.udp_encap = true;
    spec.local_ts = {range(IpAddress::v4(0xc0a80000), IpAddress::v4(0xc0a8ffff))};
    const IpAddress client = IpAddress::v4(0x0ac80000 + static_cast<std::uint32_t>(i));
    spec.remote_ts = {range(client, client)};
    return spec;
  };
  if (!table.install(spec_for(n + 100))) return 1;
  table.remove(n + 101);

  const std::size_t before = heap_in_use();
  for (std::size_t i = 0; i < n; ++i)
    if (auto r = table.install(spec_for(i)); !r) {
      std::fprintf(stderr, "install %zu: %s\n", i, r.error().c_str());
      return 1;
    }
  const std::size_t after = heap_in_use();
  std::printf("suite %s, %zu Child SAs: heap %zu -> %zu bytes, %.0f bytes per Child SA\n", s->name, n, before,
              after, static_cast<double>(after - before) / static_cast<double>(n));
  // One packet out of each SA, from the local range to its client: keys the outbound
  // direction's cipher context.
  std::vector<std::uint8_t> buf(2048);
  const std::size_t keyed_before = heap_in_use();
  std::size_t sent = 0;
  for (std::size_t i = 0; i < n; ++i) {
    constexpr std::size_t kAt = 128, kLen = 60;
    std::fill(buf.begin(), buf.end(), 0);
    std::uint8_t* ip = buf.data() + kAt;
    ip[0] = 0x45;
    ip[3] = kLen;
    ip[8] = 64;
    ip[9] = 17;
    const std::uint32_t src = 0xc0a80001, dst = 0x0ac80000 + static_cast<std::uint32_t>(i);
    for (int k = 0; k < 4; ++k) {
      ip[12 + k] = static_cast<std::uint8_t>(src >> (24 - 8 * k));
      ip[16 + k] = static_cast<std::uint8_t>(dst >> (24 - 8 * k));
    }
    if (table.protect(buf, kAt, kLen)) ++sent;
  }
  const std::size_t keyed_after = heap_in_use();
  if (sent != n) {
    std::fprintf(stderr, "only %zu of %zu SAs protected a packet\n", sent, n);
    return 1;
  }
  std::printf("one packet out of each: heap +%.0f bytes per keyed direction (%zu keyed)\n",
              static_cast<double>(keyed_after - keyed_before) / static_cast<double>(n), table.keyed_ciphers());
  std::printf("sizeof: ChildSaEntry %zu, InboundEspSa %zu, OutboundEspSa %zu, ReplayWindow %zu, HmacSha2 %zu, "
              "SaCounters %zu, EspPath %zu, TrafficSelector %zu\n",
              sizeof(ChildSaEntry), sizeof(InboundEspSa), sizeof(OutboundEspSa), sizeof(ReplayWindow),
              sizeof(HmacSha2), sizeof(SaCounters), sizeof(EspPath), sizeof(wire::TrafficSelector));
  return 0;
}
