// The keys of each configuration section, one row per key. The loader dispatches on these
// rows, the unknown-key check suggests their names, and config_reference() renders them,
// so a key cannot be accepted without being documented or documented without being
// accepted. Internal to src/daemon/config*.
#pragma once

#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include "daemon/config.h"
#include "ike/connection.h"

namespace mobike::daemon::config {

class Value;

template <typename Target>
struct Key {
  std::string_view name;
  // A TOML value, as the reference shows it.
  std::string_view example;
  // One line for the reference: meaning, choices, and the default when the example is not it.
  std::string_view doc;
  // Checks the value and stores it; complaints go through Value, naming file, line and key.
  void (*parse)(const Value& value, Target& target) = nullptr;
  // Set (and parse, example and doc empty) for a former name: using it is an error
  // pointing to the new one, rather than a bare "unknown key".
  std::string_view renamed_to = {};
  // The reference shows the key commented out, because it excludes another key there
  // (psk vs. psk_file, hook vs. lan_interface), so that the reference stays a valid configuration.
  bool commented_out = false;
};

// A connection while its keys are read: what ends up in ike::ConnectionConfig, and what
// only serves to fill it.
struct ConnectionDraft {
  ike::ConnectionConfig conn;
  // Proposals of the children that have no esp_proposals of their own.
  std::vector<wire::Proposal> esp_default;
  // Anchors a relative psk_file.
  std::filesystem::path config_dir;
  // auth, local_auth, remote_auth as read (resolved once all keys are in).
  std::optional<ike::AuthClass> auth, local_auth, remote_auth;
  bool rsa_pss = false;
};

// The [cluster] table while its keys are read.
struct ClusterDraft {
  ClusterConfig cluster;
  // Anchors a relative key_file.
  std::filesystem::path config_dir;
  // Set only when return_traffic named a known mode, so that the keys depending on it are
  // checked against what the user meant rather than against the default.
  bool return_traffic_valid = false;
};

std::span<const Key<DaemonConfig>> daemon_keys();
std::span<const Key<ClusterDraft>> cluster_keys();
std::span<const Key<ConnectionDraft>> connection_keys();
std::span<const Key<ike::ChildConfig>> child_keys();
std::span<const Key<ike::PoolConfig>> pool_keys();

template <typename Target>
const Key<Target>* find_key(std::span<const Key<Target>> keys, std::string_view name) {
  for (const auto& k : keys)
    if (k.name == name) return &k;
  return nullptr;
}

}  // namespace mobike::daemon::config
