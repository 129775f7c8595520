// The packet path must not allocate: neither our code (counted through a replaced
// global operator new) nor OpenSSL underneath it (counted through
// CRYPTO_set_mem_functions, which only works before OpenSSL's first allocation, hence
// the static initializer).
#include <openssl/crypto.h>

#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <cstdlib>
#include <new>

#include "esp/sa_table.h"
#include "esp_test_util.h"

namespace {

std::atomic<long> g_new_calls{0};
std::atomic<long> g_openssl_allocs{0};

void* counting_malloc(std::size_t n, const char*, int) {
  ++g_openssl_allocs;
  return std::malloc(n);
}
void* counting_realloc(void* p, std::size_t n, const char*, int) {
  ++g_openssl_allocs;
  return std::realloc(p, n);
}
void counting_free(void* p, const char*, int) { std::free(p); }

const bool g_openssl_hooked = CRYPTO_set_mem_functions(counting_malloc, counting_realloc, counting_free) == 1;

}  // namespace

void* operator new(std::size_t n) {
  ++g_new_calls;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace mobike::esp {
namespace {

using test::kSuites;

wire::TrafficSelector any_v4(std::string_view cidr) {
  const auto p = IpPrefix::parse(cidr);
  wire::TrafficSelector ts;
  ts.start_address = p->first();
  ts.end_address = p->last();
  return ts;
}

TEST(EspNoAllocation, ProtectAndUnprotectThroughTheTable) {
  for (const test::Suite& s : kSuites) {
    SCOPED_TRACE(s.name);
    for (bool esn : {false, true}) {
      const test::Keys k1 = test::make_keys(s, 1), k2 = test::make_keys(s, 2);
      SaTable a, b;
      ChildSaSpec sa;
      sa.child_sa_id = 1;
      sa.in = test::params(s, k2, 0x11, esn);
      sa.out = test::params(s, k1, 0x22, esn);
      sa.local_ts = {any_v4("10.1.0.0/16")};
      sa.remote_ts = {any_v4("10.2.0.0/16")};
      ChildSaSpec sb = sa;
      sb.in = sa.out;
      sb.out = sa.in;
      std::swap(sb.local_ts, sb.remote_ts);
      ASSERT_TRUE(a.install(sa));
      ASSERT_TRUE(b.install(sb));

      const Bytes inner = test::ipv4_packet("10.1.0.1", "10.2.0.1", 1400);
      Bytes buf(2048);
      auto round = [&] {
        std::copy(inner.begin(), inner.end(), buf.begin() + 128);
        auto p = a.protect(buf, 128, inner.size());
        if (!p) return false;
        auto d = b.unprotect(std::span<std::uint8_t>(buf.data() + p->esp.offset, p->esp.length));
        return d && d->inner.size() == inner.size();
      };
      ASSERT_TRUE(round());  // warm-up: lazy OpenSSL state, the IV pool's first fill
      const long news = g_new_calls, ossl = g_openssl_allocs;
      int ok = 0;
      for (int i = 0; i < 2000; ++i) ok += round();
      EXPECT_EQ(ok, 2000);
      EXPECT_EQ(g_new_calls - news, 0) << "operator new on the packet path";
      if (g_openssl_hooked) {
        EXPECT_EQ(g_openssl_allocs - ossl, 0) << "OpenSSL allocated on the packet path";
      }
    }
  }
  // Creating SAs does allocate: proves both counters are live.
  EXPECT_GT(g_new_calls.load(), 0);
  if (g_openssl_hooked) {
    EXPECT_GT(g_openssl_allocs.load(), 0);
  } else {
    std::cerr << "note: CRYPTO_set_mem_functions came too late; OpenSSL allocations not counted\n";
  }
}

}  // namespace
}  // namespace mobike::esp
