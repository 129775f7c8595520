// EAP keys of [[connection]]: remote_auth/local_auth "eap-mschapv2", eap_id, eap_tls13, and
// the eap_secrets file (ipsec.secrets lines), with every error named by file, line and key.
#include <gtest/gtest.h>

#include "daemon/config.h"
#include "daemon/views.h"
#include "temp_dir.h"

namespace mobike::daemon {
namespace {

using testing::TempDir;

constexpr const char* kGateway =
    "[[connection]]\nname = \"rw\"\nlocal_id = \"gw.example.test\"\nlocal_auth = \"psk\"\n"
    "psk = \"gateway-psk-0123\"\nremote_auth = \"eap-mschapv2\"\neap_id = \"%any\"\n";
constexpr const char* kClient =
    "[[connection]]\nname = \"home\"\nlocal_id = \"phone@example.test\"\nlocal_auth = \"eap-mschapv2\"\n"
    "remote_auth = \"psk\"\npsk = \"gateway-psk-0123\"\nremote_addrs = [\"192.0.2.1\"]\n";

TEST(EapConfig, GatewayReadsUsersFromTheSecretsFile) {
  TempDir dir;
  dir.write("eap.secrets",
            "# users\ncarol : EAP \"carol's pw\"\n\"CORP\\\\dave\" : eap \"with \\\"quotes\\\"\"  # comment\n"
            "   erin:EAP bare-word\n\n",
            0600);
  auto r = load_config(dir.write("mobiked.toml", std::string(kGateway) + "eap_secrets = \"eap.secrets\"\n"));
  ASSERT_TRUE(r) << r.error();
  const auto& c = r->connections.at(0);
  EXPECT_EQ(c.remote_auth, ike::AuthClass::kEapMschapv2);
  EXPECT_EQ(c.local_auth, ike::AuthClass::kPsk);
  EXPECT_EQ(c.eap_id, "%any");
  ASSERT_TRUE(c.eap_secrets);
  EXPECT_EQ(*c.eap_secrets, (std::map<std::string, std::string, std::less<>>{
                                {"carol", "carol's pw"}, {"CORP\\dave", "with \"quotes\""}, {"erin", "bare-word"}}));
}

TEST(EapConfig, ClientNeedsItsOwnPasswordAndDefaultsTheEapIdentityToLocalId) {
  TempDir dir;
  dir.write("eap.secrets", "phone@example.test : EAP \"pw\"\n", 0600);
  auto r = load_config(dir.write("mobiked.toml", std::string(kClient) + "eap_secrets = \"eap.secrets\"\n"));
  ASSERT_TRUE(r) << r.error();
  EXPECT_FALSE(r->connections[0].eap_id);
  r = load_config(dir.write("mobiked.toml", std::string(kClient) + "eap_secrets = \"eap.secrets\"\neap_id = \"carol\"\n"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("mobiked.toml:8: connection 'home': key 'eap_secrets': holds no password for our EAP "
                           "identity 'carol'"),
            std::string::npos)
      << r.error();
}

struct Case {
  const char* secrets;  // nullptr: no file
  int mode;
  const char* extra;
  const char* error;
};

class EapConfigError : public ::testing::TestWithParam<Case> {};

TEST_P(EapConfigError, IsNamedByFileLineAndKey) {
  const Case& c = GetParam();
  TempDir dir;
  if (c.secrets) dir.write("eap.secrets", c.secrets, c.mode);
  auto r = load_config(dir.write("mobiked.toml", std::string(kGateway) + c.extra));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find(c.error), std::string::npos) << r.error();
  // No password appears in an error.
  EXPECT_EQ(r.error().find("s3cret"), std::string::npos) << r.error();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, EapConfigError,
    ::testing::Values(
        Case{nullptr, 0, "", "connection 'rw': key 'eap_secrets': required with EAP"},
        Case{"carol : EAP \"s3cret\"\n", 0640, "eap_secrets = \"eap.secrets\"\n",
             "mobiked.toml:8: connection 'rw': key 'eap_secrets': "},
        Case{"carol : EAP \"s3cret\"\ncarol : EAP \"s3cret2\"\n", 0600, "eap_secrets = \"eap.secrets\"\n",
             "eap.secrets line 2: 'carol' appears twice"},
        Case{"carol : PSK \"s3cret\"\n", 0600, "eap_secrets = \"eap.secrets\"\n",
             "eap.secrets line 1: only EAP secrets belong here, not 'PSK'"},
        Case{"# x\ncarol EAP \"s3cret\"\n", 0600, "eap_secrets = \"eap.secrets\"\n",
             "eap.secrets line 2: expected 'identity : EAP \"password\"'"},
        Case{"carol : EAP \"s3cret\n", 0600, "eap_secrets = \"eap.secrets\"\n",
             "eap.secrets line 1: unterminated quote in the password of 'carol'"},
        Case{"carol : EAP\n", 0600, "eap_secrets = \"eap.secrets\"\n", "eap.secrets line 1: no password for 'carol'"},
        Case{"carol : EAP \"s3cret\" trailing\n", 0600, "eap_secrets = \"eap.secrets\"\n",
             "eap.secrets line 1: text after the password of 'carol'"},
        Case{nullptr, 0, "eap_secrets = \"missing.secrets\"\n", "key 'eap_secrets': cannot open "},
        Case{"\"\" : EAP \"s3cret\"\n", 0600, "eap_secrets = \"eap.secrets\"\n",
             "eap.secrets line 1: no identity before ':'"}));

TEST(EapConfig, EapForBothSidesIsRefused) {
  TempDir dir;
  dir.write("eap.secrets", "carol : EAP \"pw\"\n", 0600);
  auto r = load_config(dir.write("mobiked.toml",
                                 "[[connection]]\nname = \"x\"\nlocal_id = \"carol\"\nauth = \"eap-mschapv2\"\n"
                                 "eap_secrets = \"eap.secrets\"\n"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("mobiked.toml:4: connection 'x': key 'auth': EAP authenticates the client only"),
            std::string::npos)
      << r.error();
}

TEST(EapConfig, EapTlsNeedsCertificatesAndAnchorsNotPasswords) {
  TempDir dir;
  auto r = load_config(dir.write("mobiked.toml",
                                 "[[connection]]\nname = \"rw\"\nlocal_id = \"gw.example.test\"\nlocal_auth = \"psk\"\n"
                                 "psk = \"gateway-psk-0123\"\nremote_auth = \"eap-tls\"\n"));
  ASSERT_FALSE(r);
  for (const char* e : {"key 'local_certs': required with EAP-TLS (our TLS certificate)",
                        "key 'local_key': required with EAP-TLS (our TLS certificate's key)",
                        "key 'cacerts': required with EAP-TLS (anchors for the other end's TLS certificate)"})
    EXPECT_NE(r.error().find(e), std::string::npos) << r.error();
  EXPECT_EQ(r.error().find("eap_secrets"), std::string::npos) << r.error();
}

TEST(EapConfig, EapTls13SchemeIsRfc9190UnlessToldPreRfc9190) {
  TempDir dir;
  dir.write("eap.secrets", "carol : EAP \"pw\"\n", 0600);
  const std::string base = std::string(kGateway) + "eap_secrets = \"eap.secrets\"\n";
  auto r = load_config(dir.write("mobiked.toml", base));
  ASSERT_TRUE(r) << r.error();
  EXPECT_FALSE(r->connections[0].eap_tls13_pre_rfc9190);
  EXPECT_FALSE(connection_list_view({&r->connections[0]})[0].contains("eap_tls13"));  // list-conns
  r = load_config(dir.write("mobiked.toml", base + "eap_tls13 = \"pre-rfc9190\"\n"));
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->connections[0].eap_tls13_pre_rfc9190);
  EXPECT_EQ(connection_list_view({&r->connections[0]})[0].value("eap_tls13", ""), "pre-rfc9190");
  r = load_config(dir.write("mobiked.toml", base + "eap_tls13 = \"rfc9190\"\n"));
  ASSERT_TRUE(r) << r.error();
  EXPECT_FALSE(r->connections[0].eap_tls13_pre_rfc9190);
  r = load_config(dir.write("mobiked.toml", base + "eap_tls13 = \"draft\"\n"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("mobiked.toml:9: connection 'rw': key 'eap_tls13': unsupported value 'draft' "
                           "(\"rfc9190\" or \"pre-rfc9190\")"),
            std::string::npos)
      << r.error();
}

}  // namespace
}  // namespace mobike::daemon
