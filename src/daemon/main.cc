// mobiked --config FILE [--foreground] | --check-config FILE | --config-reference | --config-reference-roff
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/journal_log.h"

int main(int argc, char** argv) {
  CLI::App app{"mobiked: an IKEv2/IPsec daemon with MOBIKE"};
  std::string config_path;
  bool foreground = false;
  std::string check_path;
  auto* config_opt = app.add_option("-c,--config", config_path, "configuration file (TOML)");
  app.add_flag("-f,--foreground", foreground, "stay in the foreground");
  auto* check_opt = app.add_option("--check-config", check_path,
                                   "load and check this configuration file (and the files it names), print OK "
                                   "or its errors, and exit (0 or 2)");
  check_opt->excludes(config_opt);
  // Handled like --version: it needs no --config, so it ends parsing before that is demanded.
  app.add_flag_callback(
      "--config-reference",
      [] {
        std::cout << mobike::daemon::config_reference();
        throw CLI::Success();
      },
      "print every configuration key (commented TOML) and exit");
  // The KEYS section of mobiked.toml(5), rendered from the same table.
  app.add_flag_callback(
      "--config-reference-roff",
      [] {
        std::cout << mobike::daemon::config_reference_roff();
        throw CLI::Success();
      },
      "print the same keys as roff, for the KEYS section of mobiked.toml(5), and exit");
  CLI11_PARSE(app, argc, argv);

  if (*check_opt) {
    auto config = mobike::daemon::load_config(check_path);
    if (!config) {
      std::cerr << config.error() << "\n";
      return 2;
    }
    std::cout << "OK\n";
    return 0;
  }
  if (!*config_opt) {
    std::cerr << "--config is required\n" << app.help();
    return 106;  // CLI11's RequiredError
  }

  mobike::daemon::init_logging("mobiked");

  auto config = mobike::daemon::load_config(config_path);
  if (!config) {
    spdlog::critical("{}", config.error());
    return 2;
  }
  spdlog::set_level(config->daemon.log_level);
  // Under a service manager (NOTIFY_SOCKET) mobiked stays the process the manager
  // started: its notifications are accepted from that process only, and a parent that
  // exits after detaching looks like a daemon that died.
  const char* notify_socket = std::getenv("NOTIFY_SOCKET");
  if (notify_socket && *notify_socket) foreground = true;
  if (!foreground && ::daemon(0, 1) != 0) {
    spdlog::critical("cannot detach: {}", std::strerror(errno));
    return 1;
  }
  mobike::daemon::Daemon daemon(std::move(*config), config_path);
  if (auto r = daemon.start(); !r) {
    spdlog::critical("{}", r.error());
    return 1;
  }
  daemon.run();
  spdlog::info("stopped");
  return 0;
}
