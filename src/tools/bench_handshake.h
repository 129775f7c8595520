// `mobike-bench handshake`: establishes N IKE SAs, each with one Child SA, against a
// responder and measures how fast it answers and how much memory it keeps per SA.
//
// The load comes from an in-process ike::Engine acting as initiator over real UDP
// sockets, so that the bench exercises the same protocol code as mobiked and speaks to
// any IKEv2 responder (mobiked, strongSwan). Every SA gets its own connection
// definition with a distinct inner selector (one /32 out of --ts-pool) because a
// responder that installs policies (strongSwan with kernel-libipsec) would otherwise
// see the same policy installed N times. With a virtual IP (--vip) each SA instead asks
// for an address and offers TSi 0.0.0.0/0, which the responder narrows to it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/expected.h"
#include "common/ip_address.h"
#include "crypto/certificate.h"
#include "crypto/signature.h"
#include "ike/connection.h"
#include "wire/payloads.h"

namespace mobike::bench {

struct HandshakeOptions {
  Endpoint target;               // the responder's IKE endpoint
  IpAddress local;               // where the bench sends from
  std::uint16_t local_port = 500;       // 0 = ephemeral
  std::uint16_t local_natt_port = 4500;  // 0 = ephemeral
  std::size_t count = 100;
  double rate = 0;               // new SAs per second; 0 = as fast as concurrency allows
  std::size_t concurrency = 64;  // SAs started but neither established nor failed
  // How we authenticate, and how the responder must: kPsk with `psk`, or kPubkey with
  // our certificate (then intermediates to send), its key and the anchors for the
  // responder's certificate. Loaded once; every SA's connection shares them.
  ike::AuthClass auth = ike::AuthClass::kPsk;
  Bytes psk;
  std::vector<std::shared_ptr<const crypto::Certificate>> local_certs;
  std::shared_ptr<const crypto::PrivateKey> private_key;
  std::shared_ptr<const crypto::TrustStore> trust;
  ike::Identity local_id;
  std::optional<ike::Identity> remote_id;  // nullopt = accept any
  std::vector<wire::Proposal> ike_proposals;
  std::vector<wire::Proposal> esp_proposals;
  IpPrefix ts_pool;                   // SA i proposes TSi = the (i+1)-th /32 of this
  // Ask for a virtual IPv4 address (CFG_REQUEST with INTERNAL_IP4_ADDRESS, as a road
  // warrior with vips = 0.0.0.0): TSi is then "dynamic", 0.0.0.0/0 narrowed by the
  // responder to the address it assigns, and ts_pool is not used.
  bool vip = false;
  std::vector<IpPrefix> remote_ts;    // TSr offered; the responder narrows it
  bool mobike = true;                 // offer MOBIKE (and so float to the NAT-T port)
  // Switch targets the initiators follow besides the addresses the responder announced
  // (a gateway cluster's other nodes).
  std::vector<IpPrefix> switch_allow;
  std::optional<int> responder_pid;   // read its VmRSS before and after
  std::chrono::milliseconds sa_timeout{30000};  // per SA, from its first request
  std::chrono::milliseconds settle{1000};       // idle time before the "after" RSS
  bool delete_after = false;          // delete the SAs at the end (default: leave up)
  // After establishing: keep the SAs up and answer the responder for this long (a
  // responder-initiated switch of all of them, bench/mass-switch); `ready_file` is
  // written when the hold starts, so that a script knows when to act.
  std::chrono::milliseconds hold{0};
  std::string ready_file;
  std::chrono::milliseconds retransmit_timeout{2000};
  int retransmit_tries = 5;
};

struct HandshakeReport {
  // Echo of what was asked, so a JSON report stands on its own.
  std::string target;
  std::string local;
  std::size_t count = 0;
  double rate_limit = 0;
  std::size_t concurrency = 0;
  std::string ike_proposals;
  std::string esp_proposals;
  bool mobike = false;
  std::string auth;  // "psk", or "pubkey" with the key's kind in `key`
  std::string key;   // "ECDSA P-256", "RSA 3072", ...
  bool vip = false;

  std::size_t established = 0;  // IKE SA and its Child SA both up
  std::size_t failed = 0;
  std::map<std::string, std::size_t> failure_reasons;
  // With --vip, of the established SAs: those the responder assigned an address, how
  // many different addresses that made, and those whose Child SA's TSi the responder
  // narrowed to exactly that address.
  std::size_t vips_assigned = 0;
  std::size_t vips_distinct = 0;
  std::size_t vips_in_ts = 0;
  double elapsed_s = 0;      // first request to last establishment
  double sas_per_s = 0;      // established / elapsed_s
  double wall_s = 0;         // first request to the last SA resolved (incl. failures)
  double latency_p50_ms = 0;  // IKE_SA_INIT request sent -> Child SA installed
  double latency_p90_ms = 0;
  double latency_p99_ms = 0;
  double latency_max_ms = 0;
  std::uint64_t retransmits = 0;
  std::uint64_t datagrams_out = 0;
  std::uint64_t datagrams_in = 0;
  std::uint64_t send_errors = 0;

  std::optional<int> responder_pid;
  std::optional<std::uint64_t> rss_before;  // bytes
  std::optional<std::uint64_t> rss_after;
  std::optional<double> bytes_per_sa;       // (after - before) / established

  std::optional<double> responder_cpu_s;  // its user+system CPU time during the run
  double bench_cpu_s = 0;                 // ours: the bench must not be the bottleneck

  std::size_t deleted = 0;  // with --delete: SAs gone at the end

  // With --hold: what happened to the established SAs meanwhile.
  double hold_s = 0;
  std::size_t held = 0;             // IKE SAs up when the hold began
  std::size_t moved = 0;            // of those, now on another responder address
  std::size_t lost = 0;             // of those, gone by the end
  std::size_t rekeyed = 0;          // IKE SA rekeys seen (a switch must not need any)
  std::map<std::string, std::size_t> remote_addresses;  // responder address -> SAs, at the end
  double first_move_s = 0, last_move_s = 0;  // since the hold began
};

Expected<HandshakeReport, std::string> run_handshake(const HandshakeOptions& options);

nlohmann::json to_json(const HandshakeReport& r);
std::string to_text(const HandshakeReport& r);

// VmRSS of a process in bytes, from /proc/PID/status; nullopt if unreadable.
std::optional<std::uint64_t> resident_bytes(int pid);

}  // namespace mobike::bench
