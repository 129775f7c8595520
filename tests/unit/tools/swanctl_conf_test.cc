#include "tools/swanctl_conf.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <unistd.h>

namespace mobike::tools::swanctl {
namespace {

// Files by path, for includes without a file system.
FileReader reader(std::map<std::string, std::string> files) {
  return [files = std::move(files)](const std::string& path) -> std::optional<std::string> {
    auto it = files.find(path);
    if (it == files.end()) return std::nullopt;
    return it->second;
  };
}

Section parse_ok(std::string_view text, std::map<std::string, std::string> files = {}) {
  auto r = parse_text(text, "/etc/swanctl/swanctl.conf", reader(std::move(files)));
  EXPECT_TRUE(r) << (r ? "" : r.error());
  return r ? *r : Section{};
}

std::string parse_error(std::string_view text, std::map<std::string, std::string> files = {}) {
  auto r = parse_text(text, "/etc/swanctl/swanctl.conf", reader(std::move(files)));
  EXPECT_FALSE(r);
  return r ? std::string() : r.error();
}

TEST(SwanctlConf, SectionsAndSettingsWithLines) {
  auto root = parse_ok(
      "connections {\n"
      "  home {\n"
      "    remote_addrs = 192.0.2.1, gw.example.org\n"
      "    local { auth = pubkey\n"
      "    }\n"
      "  }\n"
      "}\n");
  const Section* home = root.section("connections")->section("home");
  ASSERT_NE(home, nullptr);
  const Setting* ra = home->setting("remote_addrs");
  ASSERT_NE(ra, nullptr);
  EXPECT_EQ(ra->value, "192.0.2.1, gw.example.org");
  EXPECT_EQ(ra->where.line, 3u);
  EXPECT_EQ(ra->where.file, "/etc/swanctl/swanctl.conf");
  EXPECT_EQ(home->section("local")->setting("auth")->value, "pubkey");
  EXPECT_EQ(home->section("local")->where.line, 4u);
  EXPECT_EQ(split_list(ra->value), (std::vector<std::string>{"192.0.2.1", "gw.example.org"}));
}

TEST(SwanctlConf, CommentsAndBlankValues) {
  auto root = parse_ok(
      "# a comment { with braces }\n"
      "a {\n"
      "  b = value with spaces   # trailing comment\n"
      "  c =\n"
      "  # d = not read\n"
      "}\n");
  const Section* a = root.section("a");
  EXPECT_EQ(a->setting("b")->value, "value with spaces");
  EXPECT_EQ(a->setting("c")->value, "");
  EXPECT_EQ(a->setting("d"), nullptr);
}

TEST(SwanctlConf, QuotedValuesWithEscapesSpanLines) {
  auto root = parse_ok(
      "s {\n"
      "  q = \"a \\\"quoted\\\" # not a comment\\\\ end\"  # a comment\n"
      "  t = \"tab\\there\\nnewline\"\n"
      "  m = \"first\n"
      "second\"\n"
      "  after = x\n"
      "}\n");
  const Section* s = root.section("s");
  EXPECT_EQ(s->setting("q")->value, "a \"quoted\" # not a comment\\ end");
  EXPECT_EQ(s->setting("t")->value, "tab\there\nnewline");
  EXPECT_EQ(s->setting("m")->value, "first\nsecond");
  EXPECT_EQ(s->setting("after")->where.line, 6u);
}

TEST(SwanctlConf, SectionsMergeAndLaterValuesWin) {
  auto root = parse_ok("a {\n x = 1\n y = 2\n}\na {\n x = 3\n}\n");
  ASSERT_EQ(root.sections.size(), 1u);
  const Section* a = root.section("a");
  ASSERT_EQ(a->settings.size(), 2u);
  EXPECT_EQ(a->setting("x")->value, "3");
  EXPECT_EQ(a->setting("x")->where.line, 6u);
}

TEST(SwanctlConf, BraceOnNextLineAndReferences) {
  auto root = parse_ok("base {\n k = v\n}\nconn : base, other\n{\n x = y\n}\n");
  const Section* conn = root.section("conn");
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(conn->refs, (std::vector<std::string>{"base", "other"}));
  EXPECT_EQ(conn->setting("x")->value, "y");
}

TEST(SwanctlConf, IncludeRelativeToTheIncludingFile) {
  auto root = parse_ok(
      "connections {\n  include conf.d/home.conf\n}\nsecrets {\n}\n",
      {{"/etc/swanctl/conf.d/home.conf", "home {\n  remote_addrs = 192.0.2.1\n}\ninclude ../more/x.conf\n"},
       {"/etc/swanctl/conf.d/../more/x.conf", "work {\n version = 2\n}\n"}});
  const Section* cs = root.section("connections");
  ASSERT_NE(cs, nullptr);
  const Setting* ra = cs->section("home")->setting("remote_addrs");
  EXPECT_EQ(ra->where.file, "/etc/swanctl/conf.d/home.conf");
  EXPECT_EQ(ra->where.line, 2u);
  EXPECT_NE(cs->section("work"), nullptr);
}

TEST(SwanctlConf, IncludeGlobThroughTheFileSystem) {
  char tmpl[] = "/tmp/swanctl-conf-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::filesystem::path dir(tmpl);
  std::filesystem::create_directory(dir / "conf.d");
  std::ofstream(dir / "conf.d" / "b.conf") << "connections {\n  b {\n  }\n}\n";
  std::ofstream(dir / "conf.d" / "a.conf") << "connections {\n  a {\n  }\n}\n";
  std::ofstream(dir / "swanctl.conf") << "include conf.d/*.conf\ninclude nothing/*.conf\n";
  auto root = parse_file((dir / "swanctl.conf").string());
  ASSERT_TRUE(root) << root.error();
  const Section* cs = root->section("connections");
  ASSERT_NE(cs, nullptr);
  ASSERT_EQ(cs->sections.size(), 2u);
  EXPECT_EQ(cs->sections[0].name, "a");  // in the glob's sorted order
  EXPECT_EQ(cs->sections[1].name, "b");
  std::filesystem::remove_all(dir);
}

TEST(SwanctlConf, ErrorsNameFileAndLine) {
  EXPECT_EQ(parse_error("a {\n  b = 1\n"), "/etc/swanctl/swanctl.conf:3: section 'a' opened at line 1 is not closed ('}' missing)");
  EXPECT_EQ(parse_error("a {\n}\n}\n"), "/etc/swanctl/swanctl.conf:3: '}' without a section to close");
  EXPECT_EQ(parse_error("a {\n  b c\n}\n"), "/etc/swanctl/swanctl.conf:2: expected '=' or '{' after 'b', found 'c'");
  EXPECT_EQ(parse_error("a {\n  = 1\n}\n"), "/etc/swanctl/swanctl.conf:2: expected a key or a section name, found '='");
  EXPECT_EQ(parse_error("a {\n  b = \"open\n\n"), "/etc/swanctl/swanctl.conf:2: quoted value not closed (missing '\"')");
  EXPECT_EQ(parse_error("a = \"x\" y\n"), "/etc/swanctl/swanctl.conf:1: unexpected 'y' after a quoted value");
  EXPECT_EQ(parse_error("b\n= 1\n"), "/etc/swanctl/swanctl.conf:1: expected '=' or '{' after 'b'");
  EXPECT_EQ(parse_error("x {\ninclude missing.conf\n}\n"),
            "/etc/swanctl/swanctl.conf:2: include 'missing.conf': cannot read /etc/swanctl/missing.conf");
  // An error inside an included file names that file.
  EXPECT_EQ(parse_error("include a.conf\n", {{"/etc/swanctl/a.conf", "\n\nk = v\n}\n"}}),
            "/etc/swanctl/a.conf:4: '}' without a section to close");
  // A file including itself ends at the include depth limit, not in a crash.
  EXPECT_NE(parse_error("include self.conf\n", {{"/etc/swanctl/self.conf", "include self.conf\n"}}).find("nested deeper"),
            std::string::npos);
}

TEST(SwanctlConf, DeepNestingIsAnErrorNotACrash) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "s {\n";
  for (int i = 0; i < 100; ++i) text += "}\n";
  EXPECT_NE(parse_error(text).find("nested deeper than 64"), std::string::npos);
}

TEST(SwanctlConf, TruncatedInputsNeverReadPastTheEnd) {
  const std::string text = "a : r {\n b = \"x\\\"y\" # c\n c { d = e }\n}\ninclude f\n";
  for (std::size_t n = 0; n <= text.size(); ++n)
    (void)parse_text(std::string_view(text).substr(0, n), "t.conf", reader({}));
}

TEST(SwanctlConf, SplitList) {
  EXPECT_EQ(split_list(" a ,b,, c "), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(split_list("").empty());
}

}  // namespace
}  // namespace mobike::tools::swanctl
