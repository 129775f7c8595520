// mobikectl: talks to a running mobiked over its control socket (control/protocol.h).
//
//   mobikectl [--socket PATH] [--timeout SECONDS] list-sas [--json]
//   mobikectl initiate CONN
//   mobikectl terminate CONN | terminate --sa ID
//   mobikectl rekey --ike ID | rekey --child ID
//   mobikectl stats [--json]
//   mobikectl reload
//   mobikectl update-addresses --sa ID [--local ADDR] | list-addresses [--json] | list-pools [--json]
//   mobikectl list-conns [--json]
//   mobikectl switch --to ADDR (--sa ID | --conn NAME | --all) [--rate N] [--json]
//   mobikectl switch --cancel [--json]
//   mobikectl cluster status [--json] | move --sa ID --to NODE | drain [NODE] | rebalance
//   mobikectl import-swanctl FILE [-o OUT] [--swanctl-dir DIR] [--secrets-dir DIR]
//
// The socket is --socket, else $MOBIKED_SOCKET, else /run/mobiked/mobiked.sock.
// Bulk commands (switch, cluster move / drain / rebalance) show a live progress line on
// stderr -- done/failed/remaining and SAs/s, redrawn in place -- when stderr is a terminal
// and --json is not given; otherwise the output is only the usual result. They ask
// mobiked for progress lines in any case, so --timeout is the longest silence from
// mobiked (it sends one a second while such a command runs), not the command's length.
// Exit status: 0 on success, 1 when mobiked refused the request, 2 when it could not be
// reached or answered nonsense, CLI11's codes for a bad command line. import-swanctl talks
// to no daemon: 0 when everything was carried over, 3 when something was not (listed on
// stderr and as comments in the output), 1 when the file cannot be read or parsed.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "control/client.h"
#include "control/protocol.h"
#include "tools/progress_line.h"
#include "tools/swanctl_conf.h"
#include "tools/swanctl_import.h"

namespace {

using mobike::control::json;

constexpr int kExitRefused = 1;
constexpr int kExitFailed = 2;

int fail(const std::string& message, int code = kExitFailed) {
  std::cerr << "mobikectl: " << message << "\n";
  return code;
}

void print_result(const json& result) {
  if (result.is_null()) return;
  if (result.is_string())
    std::cout << result.get<std::string>() << "\n";
  else if (result.is_object())
    std::cout << mobike::control::format_stats(result);
  else
    std::cout << result.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

// What the cancel sent on Ctrl-C achieved, from its raw answer (or the error reaching mobiked).
std::string cancel_summary(const std::string& said) {
  auto answer = json::parse(said, nullptr, false);
  if (answer.is_discarded() || !answer.is_object()) return said;
  if (!answer.value("ok", false)) return answer.value("error", said);
  const json& result = answer.value("result", json::object());
  if (!result.contains("cancelled") || !result["cancelled"].is_number_unsigned()) return said;
  return std::to_string(result["cancelled"].get<std::uint64_t>()) + " SA(s) will not be started";
}

constexpr int kExitImportFailed = 1;
constexpr int kExitImportOmissions = 3;

struct ImportArgs {
  std::string file, out, swanctl_dir, secrets_dir;
};

int import_swanctl(const ImportArgs& a) {
  namespace fs = std::filesystem;
  namespace sw = mobike::tools::swanctl;
  auto root = sw::parse_file(a.file);
  if (!root) {
    std::cerr << "mobikectl: " << root.error() << "\n";
    return kExitImportFailed;
  }
  sw::ImportOptions opt;
  opt.swanctl_dir = a.swanctl_dir.empty() ? fs::absolute(a.file).parent_path().string() : a.swanctl_dir;
  if (!a.secrets_dir.empty()) {
    opt.secrets_dir = a.secrets_dir;
    opt.secrets_ref_dir = fs::absolute(a.secrets_dir).string();
  } else if (!a.out.empty()) {
    // Next to the output, named relative to it (mobiked resolves them from the config's directory).
    opt.secrets_dir = fs::absolute(a.out).parent_path().string();
    opt.secrets_ref_dir = ".";
  }
  auto result = sw::import_config(*root, opt);
  if (!opt.secrets_dir.empty()) {
    if (auto w = sw::write_secret_files(result, opt.secrets_dir); !w) {
      std::cerr << "mobikectl: " << w.error() << "\n";
      return kExitImportFailed;
    }
  }
  if (a.out.empty()) {
    std::cout << result.toml;
  } else {
    std::ofstream out(a.out, std::ios::trunc);
    out << result.toml;
    out.close();
    if (!out) {
      std::cerr << "mobikectl: " << a.out << ": cannot write\n";
      return kExitImportFailed;
    }
  }
  for (const auto& o : result.omissions) std::cerr << o.str() << "\n";
  if (!result.omissions.empty()) {
    std::cerr << "mobikectl: " << result.omissions.size() << " setting(s) not carried over\n";
    return kExitImportOmissions;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  namespace control = mobike::control;

  CLI::App app{"Control a running mobiked.", "mobikectl"};
  std::string socket_path(control::kDefaultSocketPath);
  double timeout_seconds = 30;
  app.add_option("-s,--socket", socket_path, "mobiked's control socket")
      ->envname("MOBIKED_SOCKET")
      ->capture_default_str();
  app.add_option("--timeout", timeout_seconds,
                 "seconds to wait for an answer (bulk commands: for mobiked's next progress line)")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.require_subcommand(1);

  bool json_out = false;
  auto* list = app.add_subcommand("list-sas", "list IKE SAs and their Child SAs");
  list->add_flag("--json", json_out, "print mobiked's JSON instead of a table");

  std::string initiate_conn;
  auto* initiate = app.add_subcommand("initiate", "start a configured connection");
  initiate->add_option("connection", initiate_conn, "connection name")->required();

  std::string terminate_conn;
  std::uint64_t terminate_sa = 0;
  auto* terminate = app.add_subcommand("terminate", "delete the IKE SAs of a connection, or one IKE SA");
  auto* term_conn_opt = terminate->add_option("connection", terminate_conn, "connection name");
  auto* term_sa_opt = terminate->add_option("--sa", terminate_sa, "unique id of one IKE SA (as in list-sas)");
  term_conn_opt->excludes(term_sa_opt);

  bool rekey_ike = false, rekey_child = false;
  std::uint64_t rekey_id = 0;
  auto* rekey = app.add_subcommand("rekey", "rekey one IKE SA or one Child SA");
  auto* ike_flag = rekey->add_flag("--ike", rekey_ike, "ID is an IKE SA");
  auto* child_flag = rekey->add_flag("--child", rekey_child, "ID is a Child SA");
  ike_flag->excludes(child_flag);
  rekey->add_option("id", rekey_id, "unique id (as in list-sas)")->required();

  auto* stats = app.add_subcommand("stats", "show counters");
  stats->add_flag("--json", json_out, "print mobiked's JSON");

  auto* reload = app.add_subcommand("reload", "re-read the configuration file");

  std::uint64_t update_sa = 0;
  std::string update_local;
  auto* update = app.add_subcommand("update-addresses", "MOBIKE: move an IKE SA to a (new) local address");
  update->add_option("--sa", update_sa, "unique id of the IKE SA (as in list-sas)")->required();
  auto* update_local_opt = update->add_option("--local", update_local, "local address (default: by routing)");

  std::string switch_to, switch_conn;
  std::uint64_t switch_sa = 0;
  bool switch_all = false, switch_cancel = false;
  double switch_rate = 0;
  auto* sw = app.add_subcommand("switch", "ask initiators to move IKE SAs to another of our addresses "
                                          "(SWITCH_TO_IP_ADDRESS); waits for every outcome (Ctrl-C cancels "
                                          "the SAs not started yet)");
  auto* sw_to = sw->add_option("--to", switch_to, "our address to move to");
  sw->add_flag("--cancel", switch_cancel, "cancel the running switch: start no more SAs");
  auto* sw_sa = sw->add_option("--sa", switch_sa, "unique id of one IKE SA");
  auto* sw_conn = sw->add_option("--conn", switch_conn, "every IKE SA of this connection");
  auto* sw_all = sw->add_flag("--all", switch_all, "every IKE SA where we are the responder");
  sw->add_option("--rate", switch_rate, "SAs started per second (default: all at once)")->check(CLI::NonNegativeNumber);
  sw->add_flag("--json", json_out, "print mobiked's JSON");

  auto* cluster = app.add_subcommand("cluster", "gateway cluster: status, and moves of live SAs between nodes");
  cluster->require_subcommand(1);
  auto* cl_status = cluster->add_subcommand("status", "this node, the cluster's nodes, etcd, moves in flight");
  cl_status->add_flag("--json", json_out, "print mobiked's JSON");
  std::uint64_t cl_move_sa = 0;
  std::string cl_move_to, cl_drain_node;
  auto* cl_move = cluster->add_subcommand("move", "hand one IKE SA to another node (its client follows, no rekey)");
  cl_move->add_option("--sa", cl_move_sa, "unique id of the IKE SA (as in list-sas)")->required();
  cl_move->add_option("--to", cl_move_to, "the node to hand it to")->required();
  cl_move->add_flag("--json", json_out, "print mobiked's JSON");
  auto* cl_drain = cluster->add_subcommand("drain", "move every SA of this node (or of NODE) to the other nodes");
  auto* cl_drain_opt = cl_drain->add_option("node", cl_drain_node, "the node to drain (default: this one)");
  cl_drain->add_flag("--json", json_out, "print mobiked's JSON");
  auto* cl_rebalance = cluster->add_subcommand("rebalance", "move this node's SAs above the cluster's mean to the "
                                                            "nodes below it");
  cl_rebalance->add_flag("--json", json_out, "print mobiked's JSON");

  auto* addresses = app.add_subcommand("list-addresses", "show the host's usable local addresses (MOBIKE's set)");
  addresses->add_flag("--json", json_out, "print mobiked's JSON");
  auto* pools = app.add_subcommand("list-pools", "show the virtual IP pools and their leases");
  pools->add_flag("--json", json_out, "print mobiked's JSON");
  auto* conns = app.add_subcommand("list-conns", "show the loaded connections as configured");
  conns->add_flag("--json", json_out, "print mobiked's JSON");

  ImportArgs import_args;
  auto* import = app.add_subcommand("import-swanctl", "convert a strongSwan swanctl.conf into mobiked's TOML "
                                                      "(exit 3: some settings not carried over, listed on stderr)");
  import->add_option("file", import_args.file, "the swanctl.conf to read (includes are followed)")->required();
  import->add_option("-o,--output", import_args.out, "write the TOML here (default: standard output); PSK and "
                                                     "EAP secret files go next to it");
  import->add_option("--swanctl-dir", import_args.swanctl_dir, "where x509/, x509ca/, private/ ... are "
                                                               "(default: FILE's directory)");
  import->add_option("--secrets-dir", import_args.secrets_dir, "write the secret files (mode 0600) here");

  CLI11_PARSE(app, argc, argv);

  if (import->parsed()) return import_swanctl(import_args);

  control::Request request;
  if (list->parsed()) {
    request = control::ListSasRequest{};
  } else if (initiate->parsed()) {
    request = control::InitiateRequest{initiate_conn};
  } else if (terminate->parsed()) {
    if (!*term_conn_opt && !*term_sa_opt) return fail("terminate needs a connection name or --sa ID");
    control::TerminateRequest t;
    if (*term_conn_opt) t.connection = terminate_conn;
    if (*term_sa_opt) t.sa = terminate_sa;
    request = t;
  } else if (rekey->parsed()) {
    if (!rekey_ike && !rekey_child) return fail("rekey needs --ike or --child");
    request = control::RekeyRequest{rekey_ike ? control::RekeyRequest::Kind::kIke
                                              : control::RekeyRequest::Kind::kChild,
                                    rekey_id};
  } else if (stats->parsed()) {
    request = control::StatsRequest{};
  } else if (reload->parsed()) {
    request = control::ReloadRequest{};
  } else if (addresses->parsed()) {
    request = control::ListAddressesRequest{};
  } else if (pools->parsed()) {
    request = control::ListPoolsRequest{};
  } else if (conns->parsed()) {
    request = control::ListConnsRequest{};
  } else if (sw->parsed() && switch_cancel) {
    if (*sw_to || *sw_sa || *sw_conn || *sw_all) return fail("switch --cancel takes no other option");
    request = control::SwitchCancelRequest{};
  } else if (sw->parsed()) {
    if (!*sw_to) return fail("switch needs --to ADDRESS");
    if (int(!!*sw_sa) + int(!!*sw_conn) + int(!!*sw_all) != 1) return fail("switch needs exactly one of --sa, --conn or --all");
    control::SwitchRequest w;
    w.to = switch_to;
    if (*sw_sa) w.sa = switch_sa;
    if (*sw_conn) w.connection = switch_conn;
    w.all = switch_all;
    w.rate = switch_rate;
    request = w;
  } else if (cl_status->parsed()) {
    request = control::ClusterStatusRequest{};
  } else if (cl_move->parsed()) {
    request = control::ClusterMoveRequest{cl_move_sa, cl_move_to};
  } else if (cl_drain->parsed()) {
    control::ClusterDrainRequest d;
    if (*cl_drain_opt) d.node = cl_drain_node;
    request = d;
  } else if (cl_rebalance->parsed()) {
    request = control::ClusterRebalanceRequest{};
  } else if (update->parsed()) {
    control::UpdateAddressesRequest u{update_sa, std::nullopt};
    if (*update_local_opt) u.local = update_local;
    request = u;
  } else {
    return fail("no command given");
  }

  auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(timeout_seconds * 1000));
  const bool is_switch = std::holds_alternative<control::SwitchRequest>(request);
  // Bulk commands: progress lines from mobiked (drawn on a terminal only).
  const char* bulk_label = is_switch                                                           ? "switch"
                           : std::holds_alternative<control::ClusterMoveRequest>(request)      ? "cluster move"
                           : std::holds_alternative<control::ClusterDrainRequest>(request)     ? "cluster drain"
                           : std::holds_alternative<control::ClusterRebalanceRequest>(request) ? "cluster rebalance"
                                                                                               : nullptr;
  mobike::tools::ProgressLine progress(std::cerr, mobike::tools::progress_wanted(::isatty(STDERR_FILENO), json_out),
                                       bulk_label ? bulk_label : "");
  auto send = [&](bool with_progress) {
    // A switch of many SAs is long: Ctrl-C cancels what has not started and still prints
    // the outcome of what has.
    const json cancel = is_switch ? control::request_to_json(control::SwitchCancelRequest{}) : json(nullptr);
    return control::call_cancellable(
        socket_path, control::request_to_json(request, with_progress), cancel,
        [&](const std::string& said) {
          progress.finish();
          std::cerr << "mobikectl: cancelling: " << cancel_summary(said) << "\n";
        },
        timeout, [&](const control::Progress& p) { progress.update(p); });
  };
  auto answer = send(bulk_label != nullptr);
  if (bulk_label && answer) {
    // A mobiked from before progress lines refuses the argument (and did nothing): ask again without.
    auto refused = control::response_from_json(*answer);
    if (refused && !refused->ok && refused->error.starts_with("unknown argument 'progress'")) answer = send(false);
  }
  progress.finish();
  if (!answer) return fail(answer.error());
  auto response = control::response_from_json(*answer);
  if (!response) return fail("bad answer from mobiked: " + response.error());
  if (!response->ok) return fail(response->error, kExitRefused);

  const json& result = response->result;
  if (list->parsed()) {
    if (json_out) {
      std::cout << result.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
      return 0;
    }
    auto sas = control::sa_list_from_json(result);
    if (!sas) return fail("bad answer from mobiked: " + sas.error());
    std::cout << control::format_sa_list(*sas);
  } else if (stats->parsed()) {
    if (json_out)
      std::cout << result.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else
      std::cout << control::format_stats(result);
  } else if (sw->parsed() && !switch_cancel) {
    if (json_out)
      std::cout << result.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else
      std::cout << control::format_switch_result(result);
    // Scripts see at a glance whether every SA moved.
    for (const char* k : {"refused", "failed", "not_started"})
      if (result.value(k, std::uint64_t{0}) > 0) return kExitRefused;
  } else if (cl_status->parsed()) {
    if (json_out)
      std::cout << result.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else
      std::cout << control::format_cluster_status(result);
  } else if ((cl_move->parsed() || cl_rebalance->parsed() || cl_drain->parsed()) && result.contains("sas")) {
    if (json_out)
      std::cout << result.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else
      std::cout << control::format_cluster_moves(result);
    for (const char* k : {"returned", "failed"})
      if (result.value(k, std::uint64_t{0}) > 0) return kExitRefused;
  } else if (addresses->parsed()) {
    if (json_out)
      std::cout << result.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else
      std::cout << control::format_address_list(result);
  } else if (pools->parsed()) {
    if (json_out)
      std::cout << result.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else
      std::cout << control::format_pool_list(result);
  } else if (conns->parsed()) {
    if (json_out)
      std::cout << result.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else
      std::cout << control::format_conn_list(result);
  } else if (json_out) {
    std::cout << result.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    print_result(result);
  }
  return 0;
}
