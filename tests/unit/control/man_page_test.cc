// mobikectl(8) documents the control protocol's requests for those who script the socket
// directly; the page's list must name exactly the commands the protocol table knows.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "control/protocol.h"

namespace mobike::control {
namespace {

const std::string kManPage = MOBIKE_TEST_DATA "/../../docs/man/mobikectl.8";

// The .B tags of the .TP entries in the page's CONTROL PROTOCOL section, "\-" read as "-".
std::set<std::string> documented_requests(std::string& error) {
  std::ifstream in(kManPage);
  if (!in) {
    error = "cannot read " + kManPage;
    return {};
  }
  std::set<std::string> out;
  std::string line;
  bool in_section = false, after_tp = false;
  while (std::getline(in, line)) {
    if (line.starts_with(".SH ")) {
      in_section = line == ".SH \"CONTROL PROTOCOL\"";
      continue;
    }
    if (!in_section) continue;
    if (after_tp && line.starts_with(".B ")) {
      std::string name;
      for (std::size_t i = 3; i < line.size(); ++i)
        if (!(line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '-')) name += line[i];
      out.insert(name);
    }
    after_tp = line == ".TP";
  }
  if (out.empty()) error = "no .TP/.B entries under .SH \"CONTROL PROTOCOL\" in " + kManPage;
  return out;
}

TEST(ManPage, ListsExactlyTheProtocolsCommands) {
  std::string error;
  const auto documented = documented_requests(error);
  ASSERT_TRUE(error.empty()) << error;
  std::set<std::string> known;
  for (auto name : command_names()) known.insert(std::string(name));
  ASSERT_FALSE(known.empty());
  for (const auto& name : known)
    EXPECT_TRUE(documented.count(name)) << "'" << name << "' is a control command but mobikectl.8 does not document it";
  for (const auto& name : documented)
    EXPECT_TRUE(known.count(name)) << "mobikectl.8 documents '" << name << "', which is no control command";
}

}  // namespace
}  // namespace mobike::control
