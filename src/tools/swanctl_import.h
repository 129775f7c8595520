// `mobikectl import-swanctl`: a swanctl.conf (swanctl_conf.h) as mobiked's TOML config.
//
// connections (and their local/remote rounds and children), secrets and pools are carried
// over where mobiked has the same thing; everything else is listed as an Omission, both
// for stderr ("FILE:LINE: connections.X.Y = Z: not carried over: WHY") and as comments in
// the TOML. mobiked keeps secrets in files it names (psk_file, eap_secrets): the PSKs and
// EAP passwords of the secrets section become such files (mode 0600) in
// Options::secrets_dir; the TOML names them.
#pragma once

#include <string>
#include <vector>

#include "tools/swanctl_conf.h"

namespace mobike::tools::swanctl {

struct ImportOptions {
  // swanctl's credential directories (x509, x509ca, x509crl, private, rsa, ecdsa, pkcs8)
  // are looked up below this one: swanctl's own default is /etc/swanctl, the directory
  // of swanctl.conf.
  std::string swanctl_dir;
  // Where secret files are written; empty: they are not written (each is an omission).
  std::string secrets_dir;
  // How the TOML names files in secrets_dir (the directory relative to the output TOML's,
  // or absolute); empty: secrets_dir itself.
  std::string secrets_ref_dir;
};

struct Omission {
  Location where;
  std::string path;   // "connections.home.local.auth"
  std::string value;  // as written (secrets never shown)
  std::string reason;
  std::string str() const;  // "FILE:LINE: PATH = VALUE: not carried over: REASON"
};

struct SecretFile {
  std::string name;     // file name inside secrets_dir
  std::string content;  // what mobiked reads: a PSK ("0x..." or text), or eap.secrets lines
};

struct ImportResult {
  std::string toml;
  std::vector<Omission> omissions;
  std::vector<SecretFile> secret_files;  // to write into secrets_dir (import does not write)
};

ImportResult import_config(const Section& root, const ImportOptions& options);

// strongSwan proposals ("aes256gcm16-prfsha384-ecp384, aes128-sha256-modp2048") in
// mobiked's syntax; `why` collects what was left out. Empty result: nothing usable.
// `esp`: an ESP proposal list (no PRF; a DH group means PFS).
std::string convert_proposals(std::string_view swan, bool esp, std::vector<std::string>& why);

// Writes the result's secret files into `dir` with mode 0600; an error names the file.
Expected<bool, std::string> write_secret_files(const ImportResult& result, const std::string& dir);

}  // namespace mobike::tools::swanctl
