#include "tools/swanctl_import.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mobike::tools::swanctl {
namespace {

ImportResult convert(std::string_view text, ImportOptions opt = {}) {
  auto root = parse_text(text, "swanctl.conf", [](const std::string&) { return std::nullopt; });
  EXPECT_TRUE(root) << (root ? "" : root.error());
  if (opt.swanctl_dir.empty()) opt.swanctl_dir = "/nonexistent-swanctl";
  if (opt.secrets_dir.empty()) {
    opt.secrets_dir = "/tmp/unused";
    opt.secrets_ref_dir = ".";
  }
  return import_config(root ? *root : Section{}, opt);
}

bool has_line(const std::string& toml, const std::string& line) {
  return ("\n" + toml + "\n").find("\n" + line + "\n") != std::string::npos;
}

bool has_omission(const ImportResult& r, const std::string& text) {
  return std::any_of(r.omissions.begin(), r.omissions.end(),
                     [&](const Omission& o) { return o.str().find(text) != std::string::npos; });
}

TEST(SwanctlProposals, StrongSwanKeywordsToOurs) {
  std::vector<std::string> why;
  EXPECT_EQ(convert_proposals("aes256gcm16-prfsha384-ecp384", false, why), "aes256gcm16-prfsha384-ecp384");
  EXPECT_EQ(convert_proposals("aes128-sha256-modp2048", false, why), "aes128-sha256-modp2048");
  // Aliases, and an integrity keyword in an AEAD IKE proposal is its PRF.
  EXPECT_EQ(convert_proposals("aes256gcm128-sha2_384-curve25519", false, why), "aes256gcm16-prfsha384-x25519");
  EXPECT_EQ(convert_proposals("aes128gcm16-esn, aes256-sha512-modp3072", true, why),
            "aes128gcm16-esn, aes256-sha512-modp3072");
  EXPECT_TRUE(why.empty());
}

TEST(SwanctlProposals, UnsupportedAlgorithmsAreNamed) {
  std::vector<std::string> why;
  EXPECT_EQ(convert_proposals("aes256-sha256-modp2048-modp1024, 3des-md5-modp1024", false, why),
            "aes256-sha256-modp2048");
  EXPECT_NE(std::find(why.begin(), why.end(), "'modp1024' in 'aes256-sha256-modp2048-modp1024': mobiked does not support it"),
            why.end());
  EXPECT_NE(std::find(why.begin(), why.end(), "'3des' in '3des-md5-modp1024': mobiked does not support it"), why.end());
  EXPECT_NE(std::find(why.begin(), why.end(), "proposal '3des-md5-modp1024' left out: no algorithm mobiked supports"),
            why.end());
  why.clear();
  EXPECT_EQ(convert_proposals("default", false, why), "");
  ASSERT_EQ(why.size(), 1u);
  EXPECT_TRUE(why[0].starts_with("'default'"));
}

constexpr std::string_view kSiteToSite = R"(connections {
  s2s {
    local_addrs = 192.0.2.1
    remote_addrs = 198.51.100.2
    proposals = aes128-sha256-modp2048
    dpd_delay = 15s
    rekey_time = 2h
    over_time = 30m
    local {
      auth = psk
      id = moon.example.org
    }
    remote {
      auth = psk
      id = sun.example.org
    }
    children {
      net {
        local_ts = 10.1.0.0/16, 10.5.0.1
        remote_ts = 10.2.0.0/16
        esp_proposals = aes128gcm16
        start_action = trap
        life_time = 2h
        rekey_bytes = 1000000
      }
    }
  }
}
secrets {
  ike-other {
    id = nobody.example.org
    secret = wrong
  }
  ike-s2s {
    id-1 = moon.example.org
    id-2 = sun.example.org
    secret = 0sAAECAw==
  }
}
)";

TEST(SwanctlImport, SiteToSitePsk) {
  auto r = convert(kSiteToSite);
  // The one secret no connection matches is reported, not dropped silently.
  ASSERT_EQ(r.omissions.size(), 1u);
  EXPECT_EQ(r.omissions[0].str(), "swanctl.conf:30: secrets.ike-other = {...}: not carried over: no converted "
                                  "connection authenticates by PSK with its identities");
  EXPECT_TRUE(has_line(r.toml, "name = \"s2s\"")) << r.toml;
  EXPECT_TRUE(has_line(r.toml, "local_addrs = [\"192.0.2.1\"]"));
  EXPECT_TRUE(has_line(r.toml, "remote_addrs = [\"198.51.100.2\"]"));
  EXPECT_TRUE(has_line(r.toml, "ike_proposals = \"aes128-sha256-modp2048\""));
  EXPECT_TRUE(has_line(r.toml, "dpd_delay = \"15s\""));
  EXPECT_TRUE(has_line(r.toml, "rekey_time = \"2h\""));
  EXPECT_TRUE(has_line(r.toml, "lifetime = \"150m\"  # rekey_time + over_time"));
  EXPECT_TRUE(has_line(r.toml, "auth = \"psk\""));
  EXPECT_TRUE(has_line(r.toml, "local_id = \"moon.example.org\""));
  EXPECT_TRUE(has_line(r.toml, "remote_id = \"sun.example.org\""));
  EXPECT_TRUE(has_line(r.toml, "psk_file = \"./s2s.psk\""));
  EXPECT_TRUE(has_line(r.toml, "start = \"trap\""));
  EXPECT_TRUE(has_line(r.toml, "  local_ts = [\"10.1.0.0/16\", \"10.5.0.1/32\"]"));
  EXPECT_TRUE(has_line(r.toml, "  lifetime = \"2h\""));
  EXPECT_TRUE(has_line(r.toml, "  rekey_bytes = 1000000"));
  // The PSK of the entry matching both identities, base64 as hex; never in the TOML.
  ASSERT_EQ(r.secret_files.size(), 1u);
  EXPECT_EQ(r.secret_files[0].name, "s2s.psk");
  EXPECT_EQ(r.secret_files[0].content, "0x00010203\n");
  EXPECT_EQ(r.toml.find("AAECAw"), std::string::npos);
}

TEST(SwanctlImport, SecretsNotWrittenWithoutADirectory) {
  auto root = parse_text(kSiteToSite, "swanctl.conf", [](const std::string&) { return std::nullopt; });
  ASSERT_TRUE(root);
  auto r = import_config(*root, ImportOptions{"/nonexistent", "", ""});
  EXPECT_TRUE(has_omission(r, "swanctl.conf:34: secrets.ike-s2s = <secret>: not carried over: not written"));
  // The value of a secret never appears, in a message or in the TOML.
  for (const auto& o : r.omissions) EXPECT_EQ(o.str().find("AAECAw"), std::string::npos);
}

TEST(SwanctlImport, WhatCannotBeCarriedOverIsListedWithItsLine) {
  auto r = convert(R"(connections {
  c {
    local_addrs = 192.0.2.1
    remote_addrs = 198.51.100.2
    reauth_time = 1h
    keyingtries = 0
    local {
      auth = psk
      id = a.example.org
    }
    remote {
      auth = psk
    }
    children {
      c {
        mode = tunnel
        dpd_action = restart
        local_ts = 10.1.0.0/16[tcp/22]
      }
      d {
        remote_ts = 10.2.0.0/16
      }
    }
  }
  x {
    remote {
      auth = eap-radius
    }
  }
}
secrets {
  ike {
    secret = psk-for-all
  }
}
pools {
  p {
    addrs = dhcp
  }
}
)");
  EXPECT_TRUE(has_omission(r, "swanctl.conf:5: connections.c.reauth_time = 1h: not carried over: mobiked rekeys"));
  EXPECT_TRUE(has_omission(r, "swanctl.conf:6: connections.c.keyingtries = 0: not carried over: mobiked has no such setting"));
  EXPECT_TRUE(has_omission(r, "swanctl.conf:17: connections.c.children.c.dpd_action = restart: not carried over"));
  EXPECT_TRUE(has_omission(r, "swanctl.conf:18: connections.c.children.c.local_ts = 10.1.0.0/16[tcp/22]: not carried over"));
  EXPECT_TRUE(has_omission(r, "swanctl.conf:15: connections.c.children.c = {...}: not carried over: child left out"));
  EXPECT_TRUE(has_omission(r, "swanctl.conf:27: connections.x.remote.auth = eap-radius: not carried over"));
  EXPECT_TRUE(has_omission(r, "swanctl.conf:25: connections.x = {...}: not carried over: left out: connection 'x'"));
  EXPECT_TRUE(has_omission(r, "swanctl.conf:38: pools.p.addrs = dhcp: not carried over"));
  // The child that could be converted is there, the other is not; so is the id-less PSK.
  EXPECT_TRUE(has_line(r.toml, "  name = \"d\""));
  EXPECT_FALSE(has_line(r.toml, "  name = \"c\""));
  EXPECT_FALSE(has_line(r.toml, "name = \"x\""));
  EXPECT_TRUE(has_line(r.toml, "psk_file = \"./c.psk\""));
  // Each omission is a comment in the TOML too.
  EXPECT_NE(r.toml.find("# swanctl.conf:5: connections.c.reauth_time = 1h: not carried over"), std::string::npos);
}

TEST(SwanctlImport, EapGatewayWritesEapSecrets) {
  auto r = convert(R"(connections {
  eap {
    local_addrs = 192.0.2.1
    remote_addrs = %any
    local {
      auth = psk
      id = gw.example.org
    }
    remote {
      auth = eap-mschapv2
      eap_id = %any
    }
  }
}
secrets {
  ike-gw {
    id = gw.example.org
    secret = 0x00112233
  }
  eap-carol {
    id = carol
    secret = "pa\"ss"
  }
}
)");
  EXPECT_TRUE(r.omissions.empty()) << r.omissions.front().str();
  EXPECT_TRUE(has_line(r.toml, "local_auth = \"psk\""));
  EXPECT_TRUE(has_line(r.toml, "remote_auth = \"eap-mschapv2\""));
  EXPECT_TRUE(has_line(r.toml, "remote_addrs = [\"%any\"]"));
  EXPECT_TRUE(has_line(r.toml, "eap_id = \"%any\""));
  EXPECT_TRUE(has_line(r.toml, "eap_secrets = \"./eap.secrets\""));
  auto it = std::find_if(r.secret_files.begin(), r.secret_files.end(), [](const SecretFile& f) { return f.name == "eap.secrets"; });
  ASSERT_NE(it, r.secret_files.end());
  EXPECT_EQ(it->content, "\"carol\" : EAP \"pa\\\"ss\"\n");
}

TEST(SwanctlImport, ValuesThatAreNotWhatTheyClaimAreNotCopiedIntoTheToml) {
  auto r = convert(R"(connections {
  c {
    local_addrs = 192.0.2.1
    remote_port = 4500 # ok
    local_port = 4501
    dpd_delay = soon
    mobike = perhaps
    local {
      auth = psk
      id = a.example.org
    }
    remote {
      auth = psk
    }
  }
  d {
    local_addrs = 192.0.2.1
    remote_port = 1"\n[daemon]
    local {
      auth = psk
      id = a.example.org
    }
    remote {
      auth = psk
    }
  }
}
secrets {
  ike {
    secret = x
  }
}
)");
  EXPECT_TRUE(has_line(r.toml, "remote_port = 4500")) << r.toml;
  EXPECT_TRUE(has_omission(r, "swanctl.conf:5: connections.c.local_port = 4501: not carried over"));
  EXPECT_TRUE(has_omission(r, "swanctl.conf:6: connections.c.dpd_delay = soon: not carried over: not a duration"));
  EXPECT_TRUE(has_omission(r, "swanctl.conf:7: connections.c.mobike = perhaps: not carried over: not yes or no"));
  EXPECT_TRUE(has_omission(r, "swanctl.conf:18: connections.d.remote_port = 1\"\\n[daemon]: not carried over: not a port number"));
  EXPECT_EQ(r.toml.find("\n[daemon]\n", r.toml.find("[daemon]") + 1), std::string::npos);
}

// Every prefix of every test file either fails to parse with a file:line error or converts
// (the ASan build runs this too).
TEST(SwanctlImport, EveryTruncationOfTheTestFilesParsesOrFailsCleanly) {
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(MOBIKE_TEST_DATA) + "/swanctl")) {
    if (!e.is_regular_file() || e.path().extension() != ".conf") continue;
    ++files;
    std::ifstream in(e.path());
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    for (std::size_t n = 0; n <= text.size(); n += 7) {
      auto root = parse_text(std::string_view(text).substr(0, n), "t.conf", [](const std::string&) { return std::nullopt; });
      if (!root) {
        EXPECT_TRUE(root.error().starts_with("t.conf:")) << root.error();
        continue;
      }
      (void)import_config(*root, ImportOptions{"/nonexistent", "", ""});
    }
  }
  EXPECT_GE(files, 6u);
}

TEST(SwanctlImport, ParseErrorsAreNotSwallowed) {
  auto root = parse_text("connections {\n  a {\n", "x.conf", [](const std::string&) { return std::nullopt; });
  ASSERT_FALSE(root);
  EXPECT_TRUE(root.error().starts_with("x.conf:3: "));
}

}  // namespace
}  // namespace mobike::tools::swanctl
