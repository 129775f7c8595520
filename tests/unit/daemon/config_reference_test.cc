// The key tables behind the loader are also its documentation; these tests keep that
// documentation complete, valid, and the same as what README.md shows.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "daemon/config.h"
#include "daemon/config_keys.h"
#include "temp_dir.h"

namespace mobike::daemon {
namespace {

using testing::TempDir;

template <typename Target>
void expect_documented(std::span<const config::Key<Target>> keys, const char* section) {
  std::set<std::string_view> names;
  for (const auto& k : keys) {
    EXPECT_TRUE(names.insert(k.name).second) << section << ": '" << k.name << "' twice";
    if (!k.renamed_to.empty()) {
      // A former name leads to a current one, not to another former name or nowhere.
      auto* target = config::find_key(keys, k.renamed_to);
      ASSERT_NE(target, nullptr) << section << ": '" << k.name << "' renamed to unknown '" << k.renamed_to << "'";
      EXPECT_TRUE(target->renamed_to.empty()) << section << ": '" << k.name << "'";
      EXPECT_EQ(k.parse, nullptr) << section << ": '" << k.name << "'";
      continue;
    }
    EXPECT_FALSE(k.doc.empty()) << section << ": '" << k.name << "' has no doc";
    EXPECT_FALSE(k.example.empty()) << section << ": '" << k.name << "' has no example";
    EXPECT_NE(k.parse, nullptr) << section << ": '" << k.name << "' has no parser";
    EXPECT_EQ(k.doc.find('\n'), std::string_view::npos) << section << ": '" << k.name << "'";
  }
}

TEST(ConfigKeys, EveryKeyIsDocumented) {
  expect_documented(config::daemon_keys(), "[daemon]");
  expect_documented(config::cluster_keys(), "[cluster]");
  expect_documented(config::connection_keys(), "[[connection]]");
  expect_documented(config::child_keys(), "[[connection.child]]");
}

TEST(ConfigReference, ListsEveryKeyButFormerNames) {
  const std::string ref = config_reference();
  for (auto name : {"socket = ", "mobike_path_timeout = ", "remote_port = ", "half_open_timeout = ",
                    "keepalive_interval = ", "# psk = ", "\npsk_file = ", "\nswitch = ", "  lifetime = ",
                    "\n[cluster]\nnode = ", "\nkey_file = ", "\nlease_ttl = ", "\nlan_interface = ", "\n# hook = ",
                    "\nmove_timeout = "})
    EXPECT_NE(ref.find(name), std::string::npos) << name;
  // The cluster's keys come after the daemon's and before the connections'.
  EXPECT_LT(ref.find("[daemon]"), ref.find("[cluster]"));
  EXPECT_LT(ref.find("[cluster]"), ref.find("[[connection]]"));
  EXPECT_EQ(ref.find("responder_switch"), std::string::npos);
  EXPECT_NE(ref.find("switch = true                    # initiator: announce and follow SWITCH_TO_IP_ADDRESS\n"),
            std::string::npos)
      << ref;
}

constexpr const char* kClusterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

// The files the reference names, in the directory of the configuration.
void write_reference_files(const TempDir& dir) {
  dir.write("office.psk", "secret\n", 0600);
  dir.write("cluster.key", std::string(kClusterKey) + "\n", 0600);
}

// Comments out the line starting with `key = ` and uncomments the one starting with
// `# other = `.
void swap_commented_out(std::string& ref, const std::string& key, const std::string& other) {
  const auto line = ref.find("\n" + key + " = ");
  ASSERT_NE(line, std::string::npos) << key;
  ref.insert(line + 1, "# ");
  const auto commented = ref.find("\n# " + other + " = ");
  ASSERT_NE(commented, std::string::npos) << other;
  ref.erase(commented + 1, 2);
}

// The examples go through the same parsers as a user's file, so a wrong one fails here.
TEST(ConfigReference, IsAValidConfiguration) {
  TempDir dir;
  write_reference_files(dir);
  auto r = parse_config(config_reference(), dir.file("mobiked.toml"));
  ASSERT_TRUE(r) << r.error() << "\n" << config_reference();
  ASSERT_EQ(r->connections.size(), 1u);
  EXPECT_EQ(r->connections[0].psk, to_bytes("secret"));
  EXPECT_EQ(r->connections[0].children.size(), 1u);
  ASSERT_TRUE(r->cluster);
  EXPECT_EQ(to_hex(r->cluster->key), kClusterKey);
  EXPECT_EQ(r->cluster->return_traffic, ReturnTraffic::kProxyArp);
}

// The commented-out alternatives must be valid too.
TEST(ConfigReference, CommentedOutKeysAreValidInstead) {
  TempDir dir;
  write_reference_files(dir);
  std::string ref = config_reference();
  ASSERT_NO_FATAL_FAILURE(swap_commented_out(ref, "psk_file", "psk"));
  auto r = parse_config(ref, dir.file("mobiked.toml"));
  ASSERT_TRUE(r) << r.error() << "\n" << ref;
  EXPECT_EQ(to_hex(r->connections[0].psk), "00112233445566778899aabbccddeeff");

  // hook stands for lan_interface once return_traffic says so.
  ref = config_reference();
  ASSERT_NO_FATAL_FAILURE(swap_commented_out(ref, "lan_interface", "hook"));
  const std::string mode = "return_traffic = \"proxy_arp\"";
  const auto at = ref.find(mode);
  ASSERT_NE(at, std::string::npos);
  ref.replace(at, mode.size(), "return_traffic = \"hook\"");
  r = parse_config(ref, dir.file("mobiked.toml"));
  ASSERT_TRUE(r) << r.error() << "\n" << ref;
  ASSERT_TRUE(r->cluster);
  EXPECT_EQ(r->cluster->return_traffic, ReturnTraffic::kHook);
  EXPECT_FALSE(r->cluster->hook.empty());
  EXPECT_TRUE(r->cluster->lan_interface.empty());
}

std::string readme_block() {
  std::ifstream in(MOBIKE_TEST_DATA "/../../README.md");
  if (!in) return "(cannot read " MOBIKE_TEST_DATA "/../../README.md)";
  std::ostringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  const auto section = text.find("\n## Configuration (TOML)\n");
  if (section == std::string::npos) return "(no '## Configuration (TOML)' section in README.md)";
  const std::string open = "\n```toml\n";
  const auto start = text.find(open, section);
  if (start == std::string::npos) return "(no ```toml block in README.md's Configuration section)";
  const auto end = text.find("\n```\n", start + open.size());
  if (end == std::string::npos) return "(the ```toml block in README.md is not closed)";
  return text.substr(start + open.size(), end + 1 - (start + open.size()));
}

TEST(ConfigReference, ReadmeShowsIt) {
  EXPECT_EQ(readme_block(), config_reference())
      << "README.md's Configuration (TOML) block is not what the key tables in "
         "src/daemon/config_keys.cc say. Regenerate it: replace the lines between ```toml and ``` "
         "there with the output of `mobiked --config-reference` (e.g. build/asan/src/daemon/mobiked "
         "--config-reference).";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

const std::string kManPage = MOBIKE_TEST_DATA "/../../docs/man/mobiked.toml.5";

// The lines between the markers around the generated KEYS section of mobiked.toml(5).
std::string man_page_block() {
  const std::string text = read_file(kManPage);
  if (text.empty()) return "(cannot read " + kManPage + ")";
  const std::string begin = ".\\\" BEGIN mobiked --config-reference-roff\n";
  const std::string end = "\n.\\\" END mobiked --config-reference-roff\n";
  const auto start = text.find(begin);
  if (start == std::string::npos) return "(no BEGIN marker in " + kManPage + ")";
  const auto stop = text.find(end, start + begin.size());
  if (stop == std::string::npos) return "(no END marker in " + kManPage + ")";
  return text.substr(start + begin.size(), stop + 1 - (start + begin.size()));
}

TEST(ConfigReference, ManPageShowsIt) {
  EXPECT_EQ(man_page_block(), config_reference_roff())
      << "docs/man/mobiked.toml.5's KEYS section is not what the key tables in "
         "src/daemon/config_keys.cc say. Regenerate it: replace the lines between the BEGIN and END "
         "markers there with the output of `mobiked --config-reference-roff`.";
}

template <typename Target>
void expect_in_roff(const std::string& roff, std::span<const config::Key<Target>> keys) {
  for (const auto& k : keys) {
    std::string name;
    for (char c : k.name) name += c == '-' ? std::string("\\-") : std::string(1, c);
    const std::string macro = k.renamed_to.empty() ? ".BI " : ".B ";
    EXPECT_NE(roff.find("\n.TP\n" + macro + name + (k.renamed_to.empty() ? " " : "\n")), std::string::npos)
        << k.name << "\n" << roff;
  }
}

// Every row, former names included, gets an entry of its own, and every section a heading.
TEST(ConfigReference, RoffHasEveryKeyAndSection) {
  const std::string roff = config_reference_roff();
  expect_in_roff(roff, config::daemon_keys());
  expect_in_roff(roff, config::cluster_keys());
  expect_in_roff(roff, config::pool_keys());
  expect_in_roff(roff, config::connection_keys());
  expect_in_roff(roff, config::child_keys());
  for (auto h : {"[daemon]", "[cluster]", "[[pool]]", "[[connection]]", "[[connection.child]]"})
    EXPECT_NE(roff.find(std::string(".SS \"") + h + "\"\n"), std::string::npos) << h;
  // Types come from the examples.
  EXPECT_NE(roff.find(".BI ike_port \" integer\"\n"), std::string::npos) << roff;
  EXPECT_NE(roff.find(".BI half_open_timeout \" duration\"\n"), std::string::npos) << roff;
  EXPECT_NE(roff.find(".BI listen \" string or array of strings\"\n"), std::string::npos) << roff;
  EXPECT_NE(roff.find(".BI retransmit_base \" float\"\n"), std::string::npos) << roff;
  EXPECT_EQ(roff.find("invalid example"), std::string::npos) << roff;
  // A hyphen typed as \- so that copying it from the page gives an ASCII hyphen.
  EXPECT_NE(roff.find("eap\\-mschapv2"), std::string::npos) << roff;
}

// The EXAMPLES of mobiked.toml(5) as TOML: the .EX/.EE blocks after .SH EXAMPLES, with the
// page's escapes undone.
std::vector<std::string> man_page_examples() {
  const std::string text = read_file(kManPage);
  std::vector<std::string> out;
  auto at = text.find("\n.SH EXAMPLES\n");
  if (at == std::string::npos) return out;
  const auto section_end = text.find("\n.SH ", at + 1);
  for (;;) {
    const auto open = text.find("\n.EX\n", at);
    if (open == std::string::npos || open > section_end) break;
    const auto close = text.find("\n.EE\n", open);
    if (close == std::string::npos) break;
    const std::string roff = text.substr(open + 5, close + 1 - (open + 5));
    std::string toml;
    for (std::size_t i = 0; i < roff.size(); ++i) {
      if (roff[i] != '\\' || i + 1 == roff.size()) {
        toml += roff[i];
        continue;
      }
      const char e = roff[++i];
      if (e == '-') toml += '-';
      else if (e == 'e') toml += '\\';
      else if (e == '&') {}
      else toml += std::string("(unknown escape \\") + e + ")";
    }
    out.push_back(toml);
    at = close + 1;
  }
  return out;
}

// What the page shows an operator to copy must load, or it teaches a broken configuration.
TEST(ConfigManPage, ExamplesAreValidConfigurations) {
  const auto examples = man_page_examples();
  ASSERT_EQ(examples.size(), 2u) << "expected the gateway and the client example in " << kManPage;
  TempDir dir;
  dir.write("rw.psk", "a secret for the example\n", 0600);
  for (const auto& example : examples) {
    auto r = parse_config(example, dir.file("mobiked.toml"));
    EXPECT_TRUE(r) << r.error() << "\n" << example;
    if (r) {
      EXPECT_FALSE(r->connections.empty()) << example;
    }
  }
}

}  // namespace
}  // namespace mobike::daemon
