#include "crypto/dh.h"

#include <gtest/gtest.h>

#include <set>

#include "test_data.h"

namespace mobike::crypto {
namespace {

using test::hex;

constexpr DhGroupId kAllGroups[] = {DhGroupId::kModp2048, DhGroupId::kModp3072,
                                    DhGroupId::kEcp256, DhGroupId::kEcp384,
                                    DhGroupId::kCurve25519};

std::unique_ptr<KeyExchange> make(DhGroupId g) {
  auto ke = KeyExchange::create(g);
  EXPECT_TRUE(ke) << ke.error();
  return ke ? std::move(*ke) : nullptr;
}

std::unique_ptr<KeyExchange> make_with(DhGroupId g, const Bytes& priv) {
  auto ke = KeyExchange::create_with_private(g, priv);
  EXPECT_TRUE(ke) << ke.error();
  return ke ? std::move(*ke) : nullptr;
}

Bytes x25519(const Bytes& scalar, const Bytes& u) {
  auto ke = make_with(DhGroupId::kCurve25519, scalar);
  if (!ke) return {};
  auto s = ke->shared_secret(u);
  EXPECT_TRUE(s) << s.error();
  return s ? *s : Bytes{};
}

TEST(Dh, GroupTable) {
  EXPECT_EQ(dh_public_size(DhGroupId::kModp2048), 256u);
  EXPECT_EQ(dh_public_size(DhGroupId::kModp3072), 384u);
  EXPECT_EQ(dh_public_size(DhGroupId::kEcp256), 64u);
  EXPECT_EQ(dh_public_size(DhGroupId::kEcp384), 96u);
  EXPECT_EQ(dh_public_size(DhGroupId::kCurve25519), 32u);
  for (std::uint16_t g : {14, 15, 19, 20, 31}) EXPECT_TRUE(dh_group_supported(g)) << g;
  for (std::uint16_t g : {0, 1, 2, 5, 16, 21, 32, 0xffff}) EXPECT_FALSE(dh_group_supported(g)) << g;
  EXPECT_EQ(dh_public_size(static_cast<DhGroupId>(2)), 0u);
  EXPECT_EQ(dh_public_size(static_cast<DhGroupId>(0xffff)), 0u);
  EXPECT_FALSE(KeyExchange::create(static_cast<DhGroupId>(2)));
  EXPECT_FALSE(KeyExchange::create_with_private(static_cast<DhGroupId>(21), Bytes(66, 1)));
}

TEST(X25519, Rfc7748Section52Vectors) {
  EXPECT_EQ(to_hex(x25519(hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                          hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"))),
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
  // The u-coordinate's top bit is set here and must be masked (RFC 7748 §5).
  EXPECT_EQ(to_hex(x25519(hex("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
                          hex("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"))),
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
}

TEST(X25519, Rfc7748Section52Iterated) {
  Bytes k = hex("0900000000000000000000000000000000000000000000000000000000000000");
  Bytes u = k;
  for (int i = 1; i <= 1000; ++i) {
    Bytes r = x25519(k, u);
    ASSERT_EQ(r.size(), 32u);
    u = std::move(k);
    k = std::move(r);
    if (i == 1) {
      EXPECT_EQ(to_hex(k), "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
    }
  }
  EXPECT_EQ(to_hex(k), "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
}

TEST(X25519, Rfc7748Section61DiffieHellman) {
  auto alice = make_with(DhGroupId::kCurve25519,
                         hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
  auto bob = make_with(DhGroupId::kCurve25519,
                       hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
  ASSERT_TRUE(alice && bob);
  EXPECT_EQ(to_hex(alice->public_value()),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  EXPECT_EQ(to_hex(bob->public_value()),
            "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  auto s1 = alice->shared_secret(bob->public_value());
  auto s2 = bob->shared_secret(alice->public_value());
  ASSERT_TRUE(s1 && s2);
  EXPECT_EQ(to_hex(*s1), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  EXPECT_EQ(*s1, *s2);
}

TEST(X25519, RejectsLowOrderPointsAndBadSizes) {
  auto ke = make(DhGroupId::kCurve25519);
  ASSERT_TRUE(ke);
  // Points of order 1, 4 and 8 and p (= 0 mod p): each yields the all-zero secret
  // that RFC 8031 §2.3 requires us to refuse.
  for (const char* u : {"0000000000000000000000000000000000000000000000000000000000000000",
                        "0100000000000000000000000000000000000000000000000000000000000000",
                        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
                        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"}) {
    EXPECT_FALSE(ke->shared_secret(hex(u))) << u;
  }
  EXPECT_FALSE(ke->shared_secret(Bytes(31, 9)));
  EXPECT_FALSE(ke->shared_secret(Bytes(33, 9)));
  EXPECT_FALSE(ke->shared_secret({}));
  EXPECT_FALSE(KeyExchange::create_with_private(DhGroupId::kCurve25519, Bytes(31, 1)));
}

struct EcpVector {
  DhGroupId group;
  const char* priv_i;
  const char* priv_r;
  const char* pub_i;
  const char* pub_r;
  const char* shared;
};

// RFC 5114 §A.6 and §A.7 (the same curves as RFC 5903 groups 19 and 20), with the public
// values in the RFC 5903 encoding x || y.
const EcpVector kEcpVectors[] = {
    {DhGroupId::kEcp256, "814264145f2f56f2e96a8e337a1284993faf432a5abce59e867b7291d507a3af",
     "2ce1788ec197e096db95a200cc0ab26a19ce6bccad562b8eee1b593761cf7f41",
     "2af502f3be8952f2c9b5a8d4160d09e97165be50bc42ae4a5e8d3b4ba83aeb15"
     "eb0faf4ca986c4d38681a0f9872d79d56795bd4bff6e6de3c0f5015ece5efd85",
     "b120de4aa36492795346e8de6c2c8646ae06aaea279fa775b3ab0715f6ce51b0"
     "9f1b7eece20d7b5ed8ec685fa3f071d83727027092a8411385c34dde5708b2b6",
     "dd0f5396219d1ea393310412d19a08f1f5811e9dc8ec8eea7f80d21c820c2788"},
    {DhGroupId::kEcp384,
     "d27335ea71664af244dd14e9fd1260715dfd8a7965571c48d709ee7a7962a156d706a90cbcb5df2986f05feadb9376f1",
     "52d1791fdb4b70f89c0f00d456c2f7023b6125262c36a7df1f80231121cce3d39be52e00c194a4132c4a6c768bcd94d2",
     "793148f1787634d5da4c6d9074417d05e057ab62f82054d10ee6b0403d6279547e6a8ea9d1fd77427d016fe27a8b8c66"
     "c6c41294331d23e6f480f4fb4cd40504c947392e94f4c3f06b8f398bb29e42368f7a685923de3b67baced214a1a1d128",
     "5cd42ab9c41b5347f74b8d4efb708b3d5b36db65915359b44abc17647b6b9999789d72a84865ae2f223f12b5a1abc120"
     "e171458feaa939aaa3a8bfac46b404bd8f6d5b348c0fa4d80ceca16356ca933240bde8723415a8ece035b0edf36755de",
     "5ea1fc4af7256d2055981b110575e0a8cae53160137d904c59d926eb1b8456e427aa8a4540884c37de159a58028abc0e"},
};

TEST(Ecp, Rfc5114KnownAnswers) {
  for (const auto& v : kEcpVectors) {
    SCOPED_TRACE(static_cast<int>(v.group));
    auto i = make_with(v.group, hex(v.priv_i));
    auto r = make_with(v.group, hex(v.priv_r));
    ASSERT_TRUE(i && r);
    EXPECT_EQ(to_hex(i->public_value()), v.pub_i);
    EXPECT_EQ(to_hex(r->public_value()), v.pub_r);
    auto si = i->shared_secret(hex(v.pub_r));
    auto sr = r->shared_secret(hex(v.pub_i));
    ASSERT_TRUE(si) << si.error();
    ASSERT_TRUE(sr) << sr.error();
    EXPECT_EQ(to_hex(*si), v.shared);
    EXPECT_EQ(to_hex(*sr), v.shared);
  }
}

TEST(Ecp, RejectsInvalidPoints) {
  for (DhGroupId g : {DhGroupId::kEcp256, DhGroupId::kEcp384}) {
    SCOPED_TRACE(static_cast<int>(g));
    auto ke = make(g);
    auto peer = make(g);
    ASSERT_TRUE(ke && peer);
    const std::size_t n = dh_public_size(g);
    ASSERT_TRUE(ke->shared_secret(peer->public_value()));

    Bytes off_curve = peer->public_value();
    off_curve[n - 1] ^= 0x01;  // y changed: (x, y') is not on the curve
    EXPECT_FALSE(ke->shared_secret(off_curve));
    Bytes off_curve_x = peer->public_value();
    off_curve_x[0] ^= 0x40;
    EXPECT_FALSE(ke->shared_secret(off_curve_x));
    EXPECT_FALSE(ke->shared_secret(Bytes(n, 0)));     // (0, 0)
    EXPECT_FALSE(ke->shared_secret(Bytes(n, 0xff)));  // coordinates >= p
    // The SEC1 prefix must not be sent (RFC 5903 §7).
    Bytes with_prefix{0x04};
    append(with_prefix, peer->public_value());
    EXPECT_FALSE(ke->shared_secret(with_prefix));
    EXPECT_FALSE(ke->shared_secret(ByteView(peer->public_value()).first(n - 1)));
    EXPECT_FALSE(ke->shared_secret({}));
    // The failures must leave the instance usable.
    EXPECT_TRUE(ke->shared_secret(peer->public_value()));

    EXPECT_FALSE(KeyExchange::create_with_private(g, Bytes(n / 2, 0)));     // scalar 0
    EXPECT_FALSE(KeyExchange::create_with_private(g, Bytes(n / 2, 0xff)));  // >= order
    EXPECT_FALSE(KeyExchange::create_with_private(g, Bytes(n / 2 - 1, 1)));
  }
}

TEST(Modp, KnownAnswersFromIndependentComputation) {
  const test::VectorFile v("modp-kat.txt");
  for (auto [name, g] : {std::pair{"modp2048", DhGroupId::kModp2048},
                         std::pair{"modp3072", DhGroupId::kModp3072}}) {
    SCOPED_TRACE(name);
    const std::string n = name;
    auto i = make_with(g, v[n + ".priv_i"]);
    auto r = make_with(g, v[n + ".priv_r"]);
    ASSERT_TRUE(i && r);
    // pub_i and shared begin with a zero octet in this vector: both must keep their
    // fixed length (RFC 7296 §3.4, §2.14).
    ASSERT_EQ(v[n + ".pub_i"][0], 0);
    ASSERT_EQ(v[n + ".shared"][0], 0);
    EXPECT_EQ(i->public_value(), v[n + ".pub_i"]);
    EXPECT_EQ(r->public_value(), v[n + ".pub_r"]);
    auto si = i->shared_secret(v[n + ".pub_r"]);
    auto sr = r->shared_secret(v[n + ".pub_i"]);
    ASSERT_TRUE(si) << si.error();
    ASSERT_TRUE(sr) << sr.error();
    EXPECT_EQ(*si, v[n + ".shared"]);
    EXPECT_EQ(*sr, v[n + ".shared"]);
  }
}

// Big-endian p + delta for small |delta|.
Bytes add_small(Bytes p, int delta) {
  int carry = delta;
  for (std::size_t i = p.size(); i-- > 0 && carry != 0;) {
    int x = p[i] + carry;
    carry = 0;
    while (x < 0) { x += 256; --carry; }
    while (x > 255) { x -= 256; ++carry; }
    p[i] = static_cast<std::uint8_t>(x);
  }
  return p;
}

TEST(Modp, RejectsOutOfRangePeerValues) {
  const test::VectorFile v("modp-kat.txt");
  for (auto [name, g] : {std::pair{"modp2048", DhGroupId::kModp2048},
                         std::pair{"modp3072", DhGroupId::kModp3072}}) {
    SCOPED_TRACE(name);
    const Bytes& p = v[std::string(name) + ".prime"];
    const std::size_t n = dh_public_size(g);
    auto ke = make(g);
    ASSERT_TRUE(ke);
    Bytes one(n, 0);
    one[n - 1] = 1;
    EXPECT_FALSE(ke->shared_secret(Bytes(n, 0)));
    EXPECT_FALSE(ke->shared_secret(one));
    EXPECT_FALSE(ke->shared_secret(add_small(p, -1)));  // p-1: order 2
    EXPECT_FALSE(ke->shared_secret(p));
    EXPECT_FALSE(ke->shared_secret(add_small(p, 1)));
    EXPECT_FALSE(ke->shared_secret(Bytes(n, 0xff)));
    EXPECT_FALSE(ke->shared_secret(Bytes(n - 1, 2)));
    EXPECT_FALSE(ke->shared_secret(Bytes(n + 1, 2)));
    // The range ends just inside: 2 and p-2 are acceptable values.
    Bytes two(n, 0);
    two[n - 1] = 2;
    EXPECT_TRUE(ke->shared_secret(two));
    EXPECT_TRUE(ke->shared_secret(add_small(p, -2)));

    EXPECT_FALSE(KeyExchange::create_with_private(g, Bytes{1}));
    EXPECT_FALSE(KeyExchange::create_with_private(g, Bytes{}));
    EXPECT_FALSE(KeyExchange::create_with_private(g, add_small(p, -1)));
  }
}

TEST(Dh, AgreementBetweenFreshInstancesOfEveryGroup) {
  for (DhGroupId g : kAllGroups) {
    SCOPED_TRACE(static_cast<int>(g));
    auto a = make(g);
    auto b = make(g);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->group(), g);
    EXPECT_EQ(a->public_value().size(), dh_public_size(g));
    EXPECT_NE(a->public_value(), b->public_value());
    auto sa = a->shared_secret(b->public_value());
    auto sb = b->shared_secret(a->public_value());
    ASSERT_TRUE(sa) << sa.error();
    ASSERT_TRUE(sb) << sb.error();
    EXPECT_EQ(*sa, *sb);
    const std::size_t secret_size =
        (g == DhGroupId::kEcp256 || g == DhGroupId::kEcp384) ? dh_public_size(g) / 2
                                                              : dh_public_size(g);
    EXPECT_EQ(sa->size(), secret_size);
    // A third party's value gives a different secret.
    auto c = make(g);
    ASSERT_TRUE(c);
    auto sc = a->shared_secret(c->public_value());
    ASSERT_TRUE(sc);
    EXPECT_NE(*sc, *sa);
  }
}

TEST(Dh, RejectsWrongSizesForEveryGroup) {
  for (DhGroupId g : kAllGroups) {
    SCOPED_TRACE(static_cast<int>(g));
    auto a = make(g);
    auto b = make(g);
    ASSERT_TRUE(a && b);
    const Bytes& pub = b->public_value();
    EXPECT_FALSE(a->shared_secret({}));
    EXPECT_FALSE(a->shared_secret(ByteView(pub).first(pub.size() - 1)));
    Bytes longer = pub;
    longer.push_back(0);
    EXPECT_FALSE(a->shared_secret(longer));
    Bytes zero_prefixed{0};
    append(zero_prefixed, pub);
    EXPECT_FALSE(a->shared_secret(zero_prefixed));
  }
}

}  // namespace
}  // namespace mobike::crypto
