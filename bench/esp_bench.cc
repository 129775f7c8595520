// Userspace ESP throughput (src/esp) per suite and inner packet size, plus the
// measurements behind two implementation choices (HMAC state reuse, CBC IV pool).
//
//   cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release
//   cmake --build build/release --target esp_bench -j2
//   build/release/bench/esp_bench [--benchmark_filter=Protect]
//
// items_per_second = packets/s, bytes_per_second and Gbit/s count inner IP packet
// octets. One core, no I/O: an upper bound for what the data plane can push.
#include <benchmark/benchmark.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "crypto/random.h"
#include "esp/esp_sa.h"
#include "esp/hmac_sha2.h"
#include "esp/sa_table.h"
#include "esp_suites.h"

namespace {

using namespace mobike;
using namespace mobike::esp;

using bench::kSuites;
using bench::Suite;
constexpr int kSuiteCount = sizeof kSuites / sizeof kSuites[0];

struct Keys {
  Bytes encr, integ;
};

Keys keys_for(const Suite& s) {
  crypto::SeededRandom r(s.encr * 1000u + s.bits + s.integ);
  return {r.bytes(s.encr_len), r.bytes(s.integ_len)};
}

EspSaParams params(const Suite& s, const Keys& k, std::uint32_t spi) {
  EspSaParams p;
  p.spi = spi;
  p.encr_id = s.encr;
  p.encr_key_bits = s.bits;
  p.integ_id = s.integ;
  p.encr_key = k.encr;
  p.integ_key = k.integ;
  return p;
}

Bytes ipv4(std::size_t total, std::uint8_t dst_last = 1) {
  Bytes p(total, 0xa5);
  p[0] = 0x45;
  p[2] = static_cast<std::uint8_t>(total >> 8);
  p[3] = static_cast<std::uint8_t>(total);
  p[9] = 17;
  const std::uint8_t src[] = {10, 1, 0, 1}, dst[] = {10, 2, 0, dst_last};
  std::memcpy(&p[12], src, 4);
  std::memcpy(&p[16], dst, 4);
  return p;
}

template <class T>
T must(Expected<T, std::string> e) {
  if (!e) throw std::runtime_error(e.error());
  return std::move(*e);
}

void report(benchmark::State& state, std::size_t inner) {
  const auto bytes = static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(inner);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
  state.counters["Gbit/s"] =
      benchmark::Counter(static_cast<double>(bytes) * 8 / 1e9, benchmark::Counter::kIsRate);
}

// Protect: the inner packet is copied into place each time (encryption in place
// destroys it), i.e. the copying form of protect(); the zero-copy form saves that copy.
void BM_Protect(benchmark::State& state) {
  const Suite& s = kSuites[state.range(0)];
  const std::size_t size = static_cast<std::size_t>(state.range(1));
  const Keys k = keys_for(s);
  OutboundEspSa sa = must(OutboundEspSa::create(params(s, k, 0x1000)));
  const Bytes inner = ipv4(size);
  Bytes buf(64 + size + OutboundEspSa::kMaxOverhead);
  for (auto _ : state) {
    auto n = sa.protect(inner, buf, 64);
    benchmark::DoNotOptimize(n);
    if (!n) state.SkipWithError("protect failed");
  }
  state.SetLabel(s.name);
  report(state, size);
}

// Unprotect: packets made beforehand are copied into a work buffer (decryption is in
// place); the receiving SA is rebuilt, untimed, whenever the ring of distinct packets
// wraps, since its replay window would refuse them a second time.
void BM_Unprotect(benchmark::State& state) {
  const Suite& s = kSuites[state.range(0)];
  const std::size_t size = static_cast<std::size_t>(state.range(1));
  const Keys k = keys_for(s);
  constexpr std::size_t kRing = 256;
  OutboundEspSa out = must(OutboundEspSa::create(params(s, k, 0x1000)));
  std::vector<Bytes> ring;
  const Bytes inner = ipv4(size);
  for (std::size_t i = 0; i < kRing; ++i) {
    Bytes b(out.protected_size(size));
    if (!out.protect(inner, b, 0)) throw std::runtime_error("protect");
    ring.push_back(std::move(b));
  }
  Bytes work(ring[0].size());
  InboundEspSa in = must(InboundEspSa::create(params(s, k, 0x1000)));
  std::size_t i = 0;
  for (auto _ : state) {
    if (i == kRing) {
      state.PauseTiming();
      in = must(InboundEspSa::create(params(s, k, 0x1000)));
      i = 0;
      state.ResumeTiming();
    }
    std::memcpy(work.data(), ring[i++].data(), work.size());
    auto d = in.unprotect(work);
    benchmark::DoNotOptimize(d);
    if (!d) state.SkipWithError("unprotect failed");
  }
  state.SetLabel(s.name);
  report(state, size);
}

void suite_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"suite", "size"});
  for (int s = 0; s < kSuiteCount; ++s)
    for (int size : {64, 1400, 8900}) b->Args({s, size});
}

BENCHMARK(BM_Protect)->Apply(suite_args);
BENCHMARK(BM_Unprotect)->Apply(suite_args);

// The SA table on the outbound path: selector lookup among `range(0)` Child SAs, one
// /32 per client as on a gateway, then AES-GCM-128 protect of a 64-octet packet.
void BM_TableProtect(benchmark::State& state) {
  const Suite& s = kSuites[0];
  const Keys k = keys_for(s);
  SaTable table;
  const auto n = static_cast<std::uint32_t>(state.range(0));
  for (std::uint32_t i = 0; i < n; ++i) {
    ChildSaSpec spec;
    spec.child_sa_id = i + 1;
    spec.in = params(s, k, 0x10000 + i);
    spec.out = params(s, k, 0x20000 + i);
    wire::TrafficSelector l, r;
    l.start_address = *IpAddress::parse("10.1.0.0");
    l.end_address = *IpAddress::parse("10.1.255.255");
    r.start_address = r.end_address = IpAddress::v4(0x0a020000u + i);
    spec.local_ts = {l};
    spec.remote_ts = {r};
    if (!table.install(spec)) throw std::runtime_error("install");
  }
  Bytes inner = ipv4(64, static_cast<std::uint8_t>(n / 2));
  Bytes buf(64 + 24 + 64 + OutboundEspSa::kMaxOverhead);
  for (auto _ : state) {
    std::memcpy(buf.data() + 88, inner.data(), inner.size());
    auto r = table.protect(buf, 88, inner.size());
    benchmark::DoNotOptimize(r);
    if (!r) state.SkipWithError("table protect failed");
  }
  report(state, 64);
}
BENCHMARK(BM_TableProtect)->Arg(1)->Arg(10000);

// --- why HmacSha2 and not EVP_MAC: the ways of re-using one HMAC key per packet ----

const Bytes kMacKey(32, 0x0b);

void BM_Hmac_EspHmacSha2(benchmark::State& state) {
  const Bytes data(static_cast<std::size_t>(state.range(0)), 0x5a);
  HmacSha2 h(HmacSha2::Hash::kSha256, kMacKey);
  std::uint8_t out[16];
  for (auto _ : state) {
    h.compute(data, {}, out);
    benchmark::DoNotOptimize(out);
  }
  report(state, data.size());
}

EVP_MAC_CTX* keyed_hmac() {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);
  char digest[] = "SHA256";
  OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx, kMacKey.data(), kMacKey.size(), p) != 1) throw std::runtime_error("EVP_MAC_init");
  return ctx;
}

void BM_Hmac_EvpMacInitNullKey(benchmark::State& state) {
  const Bytes data(static_cast<std::size_t>(state.range(0)), 0x5a);
  EVP_MAC_CTX* ctx = keyed_hmac();
  std::uint8_t out[32];
  std::size_t len = 0;
  for (auto _ : state) {
    // OpenSSL 3.0: a NULL key keeps the key but duplicates the digest state inside.
    EVP_MAC_init(ctx, nullptr, 0, nullptr);
    EVP_MAC_update(ctx, data.data(), data.size());
    EVP_MAC_final(ctx, out, &len, sizeof out);
    benchmark::DoNotOptimize(out);
  }
  EVP_MAC_CTX_free(ctx);
  report(state, data.size());
}

void BM_Hmac_EvpMacCtxDup(benchmark::State& state) {
  const Bytes data(static_cast<std::size_t>(state.range(0)), 0x5a);
  EVP_MAC_CTX* tmpl = keyed_hmac();
  std::uint8_t out[32];
  std::size_t len = 0;
  for (auto _ : state) {
    EVP_MAC_CTX* c = EVP_MAC_CTX_dup(tmpl);
    EVP_MAC_update(c, data.data(), data.size());
    EVP_MAC_final(c, out, &len, sizeof out);
    EVP_MAC_CTX_free(c);
    benchmark::DoNotOptimize(out);
  }
  EVP_MAC_CTX_free(tmpl);
  report(state, data.size());
}

BENCHMARK(BM_Hmac_EspHmacSha2)->Arg(64)->Arg(1400);
BENCHMARK(BM_Hmac_EvpMacInitNullKey)->Arg(64)->Arg(1400);
BENCHMARK(BM_Hmac_EvpMacCtxDup)->Arg(64)->Arg(1400);

// --- why a pool of CBC IVs: RAND_bytes per packet vs one call per 256 IVs -----------

void BM_CbcIv_RandBytesEach(benchmark::State& state) {
  std::uint8_t iv[16];
  for (auto _ : state) {
    RAND_bytes(iv, sizeof iv);
    benchmark::DoNotOptimize(iv);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_CbcIv_RandBytesPool(benchmark::State& state) {
  std::vector<std::uint8_t> pool(4096);
  for (auto _ : state) {
    RAND_bytes(pool.data(), static_cast<int>(pool.size()));
    benchmark::DoNotOptimize(pool.data());
  }
  state.SetItemsProcessed(state.iterations() * 256);  // IVs
}

BENCHMARK(BM_CbcIv_RandBytesEach);
BENCHMARK(BM_CbcIv_RandBytesPool);

}  // namespace

BENCHMARK_MAIN();
