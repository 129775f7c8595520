#include <span>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "daemon/config.h"
#include "daemon/config_keys.h"

namespace mobike::daemon {
namespace {

// Where the comments start: the column of the hand-written example this replaced.
constexpr std::size_t kCommentColumn = 33;

// Both renderings walk the sections in this order, so the TOML reference and the man page
// cannot disagree about which sections exist.
template <typename Visit>
void for_each_section(Visit&& visit) {
  visit("[daemon]", "", config::daemon_keys());
  visit("[cluster]", "", config::cluster_keys());
  visit("[[pool]]", "", config::pool_keys());
  visit("[[connection]]", "", config::connection_keys());
  visit("[[connection.child]]", "  ", config::child_keys());
}

template <typename Target>
void render(std::string& out, std::string_view header, std::string_view indent,
            std::span<const config::Key<Target>> keys) {
  out.append(indent).append(header).append("\n");
  for (const auto& k : keys) {
    if (!k.renamed_to.empty()) continue;
    std::string line(indent);
    if (k.commented_out) line += "# ";
    line.append(k.name).append(" = ").append(k.example);
    line.append(line.size() < kCommentColumn ? kCommentColumn - line.size() : 1, ' ');
    line.append("# ").append(k.doc);
    out.append(line).append("\n");
  }
}

// Text for a roff text line: backslashes and the characters groff would typeset as
// something else than what a user must type (hyphens, grave accents) are escaped, and a
// control character at the start is neutralised.
std::string roff_text(std::string_view s) {
  std::string out;
  if (!s.empty() && (s.front() == '.' || s.front() == '\'')) out += "\\&";
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\e"; break;
      case '-': out += "\\-"; break;
      case '`': out += "\\(ga"; break;
      default: out += c;
    }
  }
  return out;
}

// The TOML type of a key, read from its example with the loader's TOML parser rather than
// declared separately, so it cannot contradict the example. A string that the loader reads
// as a duration is named so, since it also takes a bare number of seconds.
std::string value_type(std::string_view example) {
  const std::string doc = "v = " + std::string(example);
  toml::table t;
  try {
    t = toml::parse(doc);
  } catch (const toml::parse_error&) {
    // The unit tests parse every example; this only keeps a broken one visible.
    return "invalid example";
  }
  const toml::node* n = t.get("v");
  if (n == nullptr) return "invalid example";
  switch (n->type()) {
    case toml::node_type::string:
      return parse_duration(n->as_string()->get()) ? "duration" : "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::array: {
      const auto* a = n->as_array();
      if (!a->empty() && a->is_homogeneous(toml::node_type::string)) return "string or array of strings";
      return "array";
    }
    default: return "invalid example";
  }
}

template <typename Target>
void render_roff(std::string& out, std::string_view header, std::span<const config::Key<Target>> keys) {
  out.append(".SS \"").append(header).append("\"\n");
  for (const auto& k : keys) {
    out.append(".TP\n");
    if (!k.renamed_to.empty()) {
      out.append(".B ").append(roff_text(k.name)).append("\n");
      out.append("Former name of \\fB").append(roff_text(k.renamed_to));
      out.append("\\fR; the loader refuses it and names the new key.\n");
      continue;
    }
    out.append(".BI ").append(roff_text(k.name)).append(" \" ").append(value_type(k.example)).append("\"\n");
    // The example first: the descriptions are written as its comment ("or \"xfrm\" ...").
    out.append("\\fB").append(roff_text(k.name)).append(" = ").append(roff_text(k.example)).append("\\fR\n");
    out.append(".br\n").append(roff_text(k.doc)).append("\n");
    if (k.commented_out)
      out.append(".br\nAn alternative to another key of this section, as the description says; "
                 "the reference leaves it commented out.\n");
  }
}

}  // namespace

std::string config_reference() {
  std::string out;
  bool first = true;
  for_each_section([&](std::string_view header, std::string_view indent, auto keys) {
    if (!first) out += "\n";
    first = false;
    render(out, header, indent, keys);
  });
  return out;
}

std::string config_reference_roff() {
  std::string out;
  for_each_section([&](std::string_view header, std::string_view, auto keys) { render_roff(out, header, keys); });
  return out;
}

}  // namespace mobike::daemon
