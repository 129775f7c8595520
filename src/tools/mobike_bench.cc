// mobike-bench: load generators and benchmarks for mobiked (and any IKEv2 responder).
//
//   mobike-bench handshake --target ADDR [--port 500] --count N [--rate R]
//       [--concurrency C] [--local ADDR] [--local-id ID] [--remote-id ID]
//       (--psk S | --auth cert --cert FILE --key FILE --cacert FILE) [--vip]
//       [--ike PROPOSALS] [--esp PROPOSALS] [--responder-pid PID] [--json]
//       [--timeout S] [--delete]
//
// Exit status: 0 when every SA was established, 1 when any failed, 2 when the run could
// not start (bad arguments, sockets), CLI11's codes for a bad command line.
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "crypto/certificate.h"
#include "crypto/signature.h"
#include "ike/authenticator.h"
#include "ike/proposal_string.h"
#include "platform/route.h"
#include "tools/bench_handshake.h"

namespace {

constexpr int kExitFailures = 1;
constexpr int kExitSetup = 2;

int setup_error(const std::string& message) {
  std::cerr << "mobike-bench: " << message << "\n";
  return kExitSetup;
}

std::chrono::milliseconds seconds(double s) {
  return std::chrono::milliseconds(static_cast<long long>(s * 1000.0));
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// --cert, --key and --cacert, loaded once for every SA, with the checks the daemon's
// config loader makes (the same functions): the key is the certificate's, our identity is
// in it, the anchors are CA certificates. An error names the option and the file.
std::optional<std::string> load_credentials(const std::string& cert_file, const std::string& key_file,
                                            const std::string& cacert_file, mobike::bench::HandshakeOptions& o) {
  using namespace mobike;
  auto cert_text = read_file(cert_file);
  if (!cert_text) return "--cert: cannot read " + cert_file;
  auto certs = crypto::Certificate::from_pem(*cert_text);
  if (!certs) return "--cert: " + cert_file + ": " + certs.error();
  if (certs->empty()) return "--cert: no certificate in " + cert_file;
  auto key_text = read_file(key_file);
  if (!key_text) return "--key: cannot read " + key_file;
  auto key = crypto::PrivateKey::from_pem(*key_text);
  if (!key) return "--key: " + key_file + ": " + key.error();
  const auto& cert = *certs->front();
  if (auto why = ike::key_not_of_certificate(**key, cert)) return "--key: " + key_file + " " + *why;
  if (auto why = ike::identity_not_in_certificate(o.local_id, cert)) return "--local-id: " + *why;
  auto ca_text = read_file(cacert_file);
  if (!ca_text) return "--cacert: cannot read " + cacert_file;
  auto anchors = crypto::Certificate::from_pem(*ca_text);
  if (!anchors) return "--cacert: " + cacert_file + ": " + anchors.error();
  if (anchors->empty()) return "--cacert: no certificate in " + cacert_file;
  auto trust = std::make_shared<crypto::TrustStore>();
  for (auto& ca : *anchors) {
    if (auto why = ike::not_a_trust_anchor(*ca)) return "--cacert: " + cacert_file + ": " + *why;
    trust->add_anchor(std::move(ca));
  }
  o.local_certs = std::move(*certs);
  o.private_key = std::move(*key);
  o.trust = std::move(trust);
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mobike;

  CLI::App app{"Load generators and benchmarks for mobiked.", "mobike-bench"};
  app.require_subcommand(1);

  auto* hs = app.add_subcommand(
      "handshake",
      "establish N IKE SAs (one Child SA each) against a responder; report SAs/s, latency, "
      "failures and the responder's memory per SA");
  std::string target, local, psk, local_id = "bench@mobike.test", remote_id;
  std::string ike = "aes128gcm16-prfsha256-x25519", esp = "aes128gcm16";
  std::string ts_pool = "10.0.0.0/8";
  std::vector<std::string> remote_ts = {"0.0.0.0/0"};
  std::uint16_t port = 500, local_port = 500, local_natt_port = 4500;
  std::size_t count = 100, concurrency = 64;
  double rate = 0, timeout = 30, settle = 1, retransmit_timeout = 2;
  int retransmit_tries = 5;
  int responder_pid = 0;
  bool json_out = false, delete_after = false, no_mobike = false;

  hs->add_option("--target", target, "the responder's address")->required();
  hs->add_option("--port", port, "the responder's IKE port")->capture_default_str();
  hs->add_option("-n,--count", count, "IKE SAs to establish")->capture_default_str()->check(CLI::PositiveNumber);
  hs->add_option("--rate", rate, "new SAs per second at most; 0 = unlimited")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  hs->add_option("-c,--concurrency", concurrency, "SAs in progress (half-open) at most")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  hs->add_option("--local", local, "address to send from (default: the route's source to --target)");
  hs->add_option("--local-port", local_port, "our IKE port; 0 = ephemeral")->capture_default_str();
  hs->add_option("--local-natt-port", local_natt_port, "our NAT-T port; 0 = ephemeral")->capture_default_str();
  std::string auth = "psk", cert_file, key_file, cacert_file;
  bool vip = false;
  hs->add_option("--auth", auth, "how both sides authenticate: psk, or cert (certificates)")
      ->capture_default_str()
      ->check(CLI::IsMember({"psk", "cert"}));
  hs->add_option("--psk", psk, "pre-shared key (\"0x...\" for hex); required with --auth psk");
  hs->add_option("--cert", cert_file, "--auth cert: our certificate (PEM), then intermediates to send")
      ->check(CLI::ExistingFile);
  hs->add_option("--key", key_file, "--auth cert: our private key (PEM, PKCS#8)")->check(CLI::ExistingFile);
  hs->add_option("--cacert", cacert_file, "--auth cert: trust anchor(s) (PEM) for the responder's certificate")
      ->check(CLI::ExistingFile);
  hs->add_flag("--vip", vip,
               "ask for a virtual IPv4 address (configuration payload, vips = 0.0.0.0); TSi is then the "
               "assigned address as the responder narrows 0.0.0.0/0, not one of --ts-pool");
  hs->add_option("--local-id", local_id, "our identity")->capture_default_str();
  hs->add_option("--remote-id", remote_id, "the responder's identity (default: accept any)");
  hs->add_option("--ike", ike, "IKE proposals")->capture_default_str();
  hs->add_option("--esp", esp, "ESP proposals")->capture_default_str();
  hs->add_option("--ts-pool", ts_pool, "IPv4 prefix; SA i proposes its (i+1)-th address as TSi")
      ->capture_default_str();
  hs->add_option("--remote-ts", remote_ts, "TSr offered (the responder narrows it)")->capture_default_str();
  std::vector<std::string> switch_allow;
  hs->add_option("--switch-allow", switch_allow,
                 "prefixes the SAs may be switched to besides the responder's announced addresses "
                 "(a gateway cluster's nodes)");
  hs->add_flag("--no-mobike", no_mobike, "do not offer MOBIKE (no float to the NAT-T port without a NAT)");
  hs->add_option("--responder-pid", responder_pid, "read this process's VmRSS and CPU time before and after")
      ->check(CLI::PositiveNumber);
  hs->add_flag("--json", json_out, "print one JSON object instead of text");
  hs->add_option("--timeout", timeout, "seconds an SA may take from its first request before it counts as failed")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  hs->add_option("--settle", settle, "seconds to wait after the last SA before reading the responder's memory")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 600.0));
  hs->add_option("--retransmit-timeout", retransmit_timeout, "seconds before the first retransmission")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 60.0));
  hs->add_option("--retransmit-tries", retransmit_tries, "retransmissions before an SA fails")
      ->capture_default_str()
      ->check(CLI::Range(0, 20));
  hs->add_flag("--delete", delete_after, "delete the SAs at the end (default: leave them up)");
  double hold = 0;
  std::string ready_file;
  hs->add_option("--hold", hold, "seconds to keep the SAs up after establishing, answering the responder "
                                 "(e.g. its switch requests), before reporting")
      ->check(CLI::Range(0.0, 86400.0));
  hs->add_option("--ready-file", ready_file, "write the number of SAs up to this file when the hold begins");

  CLI11_PARSE(app, argc, argv);

  bench::HandshakeOptions o;
  auto target_addr = IpAddress::parse(target);
  if (!target_addr) return setup_error("--target: not an IP address: '" + target + "'");
  o.target = Endpoint{*target_addr, port};
  if (!local.empty()) {
    auto a = IpAddress::parse(local);
    if (!a) return setup_error("--local: not an IP address: '" + local + "'");
    o.local = *a;
  } else if (auto a = platform::source_address_for(*target_addr)) {
    o.local = *a;
  } else {
    return setup_error("no route to " + target + "; give --local");
  }
  o.local_port = local_port;
  o.local_natt_port = local_natt_port;
  o.count = count;
  o.rate = rate;
  o.concurrency = concurrency;
  auto lid = ike::Identity::parse(local_id);
  if (!lid) return setup_error("--local-id: cannot use '" + local_id + "'");
  o.local_id = *lid;
  if (auth == "psk") {
    if (psk.empty()) return setup_error("--psk is required with --auth psk");
    if (!cert_file.empty() || !key_file.empty() || !cacert_file.empty())
      return setup_error("--cert, --key and --cacert are for --auth cert");
    if (psk.starts_with("0x") || psk.starts_with("0X")) {
      o.psk = from_hex(std::string_view(psk).substr(2));
      if (o.psk.empty()) return setup_error("--psk: not valid hex after 0x");
    } else {
      o.psk = to_bytes(psk);
    }
    if (o.psk.empty()) return setup_error("--psk must not be empty");
  } else {
    if (cert_file.empty() || key_file.empty() || cacert_file.empty())
      return setup_error("--auth cert needs --cert, --key and --cacert");
    if (!psk.empty()) return setup_error("--psk is for --auth psk");
    o.auth = ike::AuthClass::kPubkey;
    if (auto error = load_credentials(cert_file, key_file, cacert_file, o)) return setup_error(*error);
  }
  o.vip = vip;
  if (!remote_id.empty() && remote_id != "%any") {
    auto rid = ike::Identity::parse(remote_id);
    if (!rid) return setup_error("--remote-id: cannot use '" + remote_id + "'");
    o.remote_id = *rid;
  }
  auto ike_p = ike::parse_ike_proposals(ike);
  if (!ike_p) return setup_error("--ike: " + ike_p.error());
  o.ike_proposals = std::move(*ike_p);
  auto esp_p = ike::parse_esp_proposals(esp);
  if (!esp_p) return setup_error("--esp: " + esp_p.error());
  o.esp_proposals = std::move(*esp_p);
  auto pool = IpPrefix::parse(ts_pool);
  if (!pool) return setup_error("--ts-pool: not a prefix: '" + ts_pool + "'");
  o.ts_pool = *pool;
  for (const auto& t : remote_ts) {
    auto p = IpPrefix::parse(t);
    if (!p) return setup_error("--remote-ts: not a prefix: '" + t + "'");
    o.remote_ts.push_back(*p);
  }
  for (const auto& t : switch_allow) {
    auto p = IpPrefix::parse(t);
    if (!p) return setup_error("--switch-allow: not a prefix: '" + t + "'");
    o.switch_allow.push_back(*p);
  }
  // The engine floats to its NAT-T port and maps the peer's port from its own IKE port
  // to its own NAT-T port: that only reaches the responder's NAT-T port when both sides
  // use the same pair. Otherwise stay on the IKE port (no NAT is assumed in a bench).
  o.mobike = !no_mobike;
  if (o.mobike && local_port != port) {
    std::cerr << "mobike-bench: --local-port differs from --port: not offering MOBIKE, so that no "
                 "SA floats to a port the responder does not listen on\n";
    o.mobike = false;
  }
  if (responder_pid) o.responder_pid = responder_pid;
  o.sa_timeout = seconds(timeout);
  o.settle = seconds(settle);
  o.retransmit_timeout = seconds(retransmit_timeout);
  o.retransmit_tries = retransmit_tries;
  o.delete_after = delete_after;
  o.hold = std::chrono::milliseconds(static_cast<long long>(hold * 1000));
  o.ready_file = ready_file;

  auto report = bench::run_handshake(o);
  if (!report) return setup_error(report.error());
  if (json_out)
    std::cout << bench::to_json(*report).dump() << "\n";
  else
    std::cout << bench::to_text(*report);
  return report->failed ? kExitFailures : 0;
}
