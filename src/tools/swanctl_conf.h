// A reader of strongSwan's "settings" syntax, the format of swanctl.conf (and of
// strongswan.conf): `name { ... }` sections, `key = value` where an unquoted value runs to
// the end of the line (or a '#'), double-quoted values with escapes (which may span lines),
// `#` comments, and `include PATTERN` lines (relative to the including file, glob patterns
// allowed). A section opened twice is one section; a key set twice keeps its last value.
//
// Used by `mobikectl import-swanctl` (swanctl_import.h). Every error names the file and
// line: "FILE:LINE: what is wrong".
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.h"

namespace mobike::tools::swanctl {

struct Location {
  std::string file;
  std::size_t line = 0;
  std::string str() const { return file + ":" + std::to_string(line); }
};

struct Setting {
  std::string key;
  std::string value;
  Location where;
};

struct Section {
  std::string name;
  Location where;
  // `name : a, b { ... }`: sections this one refers to (strongSwan 5.7's templates).
  std::vector<std::string> refs;
  std::vector<Setting> settings;  // in the order they first appeared
  std::vector<Section> sections;

  const Setting* setting(std::string_view key) const;
  const Section* section(std::string_view name) const;
  Section* section(std::string_view name);
};

// Reads a file (an include names further files): the whole text as one root section.
// `read` loads a file's text (tests substitute it); nullopt when it cannot be read.
using FileReader = std::function<std::optional<std::string>(const std::string& path)>;

Expected<Section, std::string> parse_file(const std::string& path);

// `text` as the content of `source_name`; includes are resolved relative to its directory
// and read with `read` (globs through the file system as well).
Expected<Section, std::string> parse_text(std::string_view text, const std::string& source_name,
                                          const FileReader& read);

// "a, b ,c" -> {"a", "b", "c"}: swanctl's comma-separated lists (empty items dropped).
std::vector<std::string> split_list(std::string_view value);

}  // namespace mobike::tools::swanctl
