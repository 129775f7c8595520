#include <span>
#include <string>
#include <string_view>

#include "daemon/config.h"
#include "daemon/config_keys.h"

namespace mobike::daemon {
namespace {

// Where the comments start: the column of the hand-written example this replaced.
constexpr std::size_t kCommentColumn = 33;

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

}  // namespace

std::string config_reference() {
  std::string out;
  render(out, "[daemon]", "", config::daemon_keys());
  out += "\n";
  render(out, "[cluster]", "", config::cluster_keys());
  out += "\n";
  render(out, "[[pool]]", "", config::pool_keys());
  out += "\n";
  render(out, "[[connection]]", "", config::connection_keys());
  out += "\n";
  render(out, "[[connection.child]]", "  ", config::child_keys());
  return out;
}

}  // namespace mobike::daemon
