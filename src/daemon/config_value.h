// The config loader's error collection and the typed reading of one key's value.
// Internal to src/daemon/config*.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <toml++/toml.h>
#include <utility>
#include <vector>

#include "ike/connection.h"

namespace mobike::daemon::config {

// "a string", "an integer", ... for "expected X, got Y" messages.
std::string type_name(const toml::node& n);

// Every problem found in one file, each "FILE:LINE: CONTEXT key 'KEY': MESSAGE", where
// CONTEXT is "" or e.g. "connection 'home': " (with its trailing space).
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void fail(const toml::source_region& where, std::string_view ctx, std::string_view key,
            std::string_view msg);
  bool empty() const { return errors_.empty(); }
  // One message per line, in file order.
  std::string report() const;

 private:
  std::string file_;
  std::vector<std::pair<std::uint32_t, std::string>> errors_;  // (line, message)
};

// A string value together with where it was written, for per-element messages.
struct Located {
  std::string text;
  const toml::node* node;
};

// One key's value as its parser sees it. The typed reads report a wrong type or range
// themselves (and return nullopt), so each parser only states what it accepts.
class Value {
 public:
  Value(const toml::node& node, std::string_view key, std::string_view ctx, Diagnostics& diagnostics)
      : node_(node), key_(key), ctx_(ctx), diagnostics_(diagnostics) {}

  const toml::node& node() const { return node_; }
  std::string_view key() const { return key_; }

  void fail(std::string_view msg) const { fail_at(node_, msg); }
  // At one element of an array value.
  void fail_at(const toml::node& where, std::string_view msg) const;

  std::optional<std::string> string() const;
  std::optional<bool> boolean() const;
  std::optional<std::int64_t> integer(std::int64_t min, std::int64_t max) const;
  // A float or an integer.
  std::optional<double> number(double min, double max) const;
  // An integer number of seconds or a string for parse_duration.
  std::optional<ike::Duration> duration() const;
  // A single string or an array of strings.
  std::optional<std::vector<Located>> strings() const;

 private:
  const toml::node& node_;
  std::string_view key_;
  std::string_view ctx_;
  Diagnostics& diagnostics_;
};

}  // namespace mobike::daemon::config
