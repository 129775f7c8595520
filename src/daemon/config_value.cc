#include "daemon/config_value.h"

#include <algorithm>
#include <charconv>
#include <sstream>

#include "daemon/config.h"

namespace mobike::daemon {
namespace {

// Anything longer is surely a typo, and keeps the arithmetic far from overflow.
constexpr std::uint64_t kMaxDurationSeconds = 10ull * 365 * 24 * 3600;

}  // namespace

Expected<ike::Duration, std::string> parse_duration(std::string_view text) {
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec == std::errc::result_out_of_range)
    return unexpected("duration '" + std::string(text) + "' is too long");
  if (ec != std::errc() || p == text.data())
    return unexpected("'" + std::string(text) + "' is not a duration (\"30s\", \"10m\", \"4h\", \"1d\" or seconds)");
  std::string_view unit(p, static_cast<std::size_t>(text.data() + text.size() - p));
  std::uint64_t mult;
  if (unit.empty() || unit == "s")
    mult = 1;
  else if (unit == "m")
    mult = 60;
  else if (unit == "h")
    mult = 3600;
  else if (unit == "d")
    mult = 86400;
  else
    return unexpected("unknown unit '" + std::string(unit) + "' in duration '" + std::string(text) +
                      "' (expected s, m, h or d)");
  if (n > kMaxDurationSeconds / mult)
    return unexpected("duration '" + std::string(text) + "' is too long");
  return ike::Duration(std::chrono::seconds(n * mult));
}

namespace config {

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

void Diagnostics::fail(const toml::source_region& where, std::string_view ctx, std::string_view key,
                       std::string_view msg) {
  errors_.emplace_back(where.begin.line, file_ + ":" + std::to_string(where.begin.line) + ": " +
                                             std::string(ctx) + "key '" + std::string(key) +
                                             "': " + std::string(msg));
}

std::string Diagnostics::report() const {
  // Tables are visited in key order, not file order; users read top to bottom.
  auto sorted = errors_;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string all;
  for (const auto& e : sorted) all += (all.empty() ? "" : "\n") + e.second;
  return all;
}

void Value::fail_at(const toml::node& where, std::string_view msg) const {
  diagnostics_.fail(where.source(), ctx_, key_, msg);
}

std::optional<std::string> Value::string() const {
  if (auto* s = node_.as_string()) return s->get();
  fail("expected a string, got " + type_name(node_));
  return std::nullopt;
}

std::optional<bool> Value::boolean() const {
  if (auto* b = node_.as_boolean()) return b->get();
  fail("expected true or false, got " + type_name(node_));
  return std::nullopt;
}

std::optional<std::int64_t> Value::integer(std::int64_t min, std::int64_t max) const {
  auto* i = node_.as_integer();
  if (!i) {
    fail("expected an integer, got " + type_name(node_));
    return std::nullopt;
  }
  if (i->get() < min || i->get() > max) {
    fail("must be in " + std::to_string(min) + ".." + std::to_string(max) + ", not " +
         std::to_string(i->get()));
    return std::nullopt;
  }
  return i->get();
}

std::optional<double> Value::number(double min, double max) const {
  double v;
  if (auto* f = node_.as_floating_point())
    v = f->get();
  else if (auto* i = node_.as_integer())
    v = static_cast<double>(i->get());
  else {
    fail("expected a number, got " + type_name(node_));
    return std::nullopt;
  }
  if (!(v >= min && v <= max)) {  // also catches NaN
    std::ostringstream os;
    os << "must be in " << min << ".." << max << ", not " << v;
    fail(os.str());
    return std::nullopt;
  }
  return v;
}

std::optional<ike::Duration> Value::duration() const {
  if (auto* i = node_.as_integer()) {
    if (i->get() < 0 || static_cast<std::uint64_t>(i->get()) > kMaxDurationSeconds) {
      fail("must be 0.." + std::to_string(kMaxDurationSeconds) + " seconds");
      return std::nullopt;
    }
    return std::chrono::seconds(i->get());
  }
  if (auto* s = node_.as_string()) {
    auto d = parse_duration(s->get());
    if (!d) {
      fail(d.error());
      return std::nullopt;
    }
    return *d;
  }
  fail("expected a duration (\"30s\", \"10m\", \"4h\", \"1d\" or seconds), got " + type_name(node_));
  return std::nullopt;
}

std::optional<std::vector<Located>> Value::strings() const {
  std::vector<Located> out;
  if (auto* s = node_.as_string()) {
    out.push_back({s->get(), &node_});
    return out;
  }
  auto* a = node_.as_array();
  if (!a) {
    fail("expected a string or an array of strings, got " + type_name(node_));
    return std::nullopt;
  }
  bool ok = true;
  for (const auto& e : *a) {
    if (auto* s = e.as_string()) {
      out.push_back({s->get(), &e});
    } else {
      fail_at(e, "expected a string in the array, got " + type_name(e));
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace config
}  // namespace mobike::daemon
