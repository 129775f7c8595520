#!/usr/bin/env python3
"""The Debian package, built from this tree and installed into a scratch root:

- `cpack -G DEB` with the build's CPackConfig.cmake (packaging/CMakeLists.txt) makes one
  mobiked_<version>_<arch>.deb. Its control fields: Package mobiked, the project's
  version, Section net, Depends found by dpkg-shlibdeps (libc6, libssl3, ...); the
  example configuration is its one conffile; the maintainer scripts parse (sh -n) and
  handle mobiked.service; it holds the daemon in /usr/sbin, mobikectl in /usr/bin, the unit
  in /lib/systemd/system (the tree's unit, whose ExecStart names that binary and that
  configuration), the man pages compressed, bash completions and the copyright file.
- `dpkg-deb -x` into a scratch root; the installed bash completion completes the
  installed programs' commands and options.
- `mobiked --check-config` says OK to the example configuration, and to it with its
  commented connections uncommented.
- The installed daemon starts with the installed example configuration in a namespace
  of its own (with a private /run, where the example's control socket lives: the
  installed mobikectl finds it by its default path), answers `stats` and lists no
  connection. The example's commented connections, uncommented (with a certificate, key
  and CA from a PKI made here, and a PSK file), load on SIGHUP: `list-conns` shows both.
  SIGTERM ends it with status 0.
"""

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from netns import (Failure, Skip, build_dir, check, log, require_commands, require_netns,  # noqa: E402
                   run_test, wait_until)
from pki import Pki  # noqa: E402

SOURCE = Path(__file__).resolve().parents[2]
EXPECTED_FILES = [
    "etc/mobiked/mobiked.toml",
    "lib/systemd/system/mobiked.service",
    "usr/sbin/mobiked",
    "usr/bin/mobikectl",
    "usr/share/man/man5/mobiked.toml.5.gz",
    "usr/share/man/man8/mobiked.8.gz",
    "usr/share/man/man8/mobikectl.8.gz",
    "usr/share/bash-completion/completions/mobikectl",
    "usr/share/bash-completion/completions/mobiked",
    "usr/share/doc/mobiked/copyright",
]


def run(argv, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, **kw)
    if r.returncode != 0:
        raise Failure(f"{' '.join(map(str, argv))} exited {r.returncode}:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r


def project_version(build: Path) -> str:
    m = re.search(r"^CMAKE_PROJECT_VERSION:STATIC=(\S+)$", (build / "CMakeCache.txt").read_text(), re.M)
    check(m is not None, "no CMAKE_PROJECT_VERSION in the build's CMakeCache.txt")
    return m.group(1)


def build_package(lab, build: Path) -> Path:
    out = lab.dir / "deb"
    run(["cpack", "-G", "DEB", "--config", build / "CPackConfig.cmake", "-B", out])
    debs = sorted(out.glob("*.deb"))
    check(len(debs) == 1, f"cpack made {[d.name for d in debs]}, not one .deb")
    return debs[0]


def check_control(deb: Path, version: str) -> None:
    f = {k: run(["dpkg-deb", "-f", deb, k]).stdout.strip() for k in
         ("Package", "Version", "Architecture", "Section", "Depends", "Description")}
    log(f"control: {json.dumps(f)}")
    check(f["Package"] == "mobiked", f"Package: {f['Package']}")
    check(f["Version"] == version, f"Version {f['Version']}, the project's is {version}")
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    check(f["Architecture"] == arch, f"Architecture {f['Architecture']}, this machine's is {arch}")
    check(f["Section"] == "net", f"Section: {f['Section']}")
    depends = {d.strip().split(" ")[0] for d in f["Depends"].split(",")}
    for lib in ("libc6", "libssl3", "libstdc++6"):
        check(lib in depends, f"Depends lacks {lib} (dpkg-shlibdeps): {f['Depends']}")
    check(deb.name == f"mobiked_{version}_{arch}.deb", f"file name {deb.name}")


def check_contents(deb: Path, scratch: Path) -> Path:
    listing = run(["dpkg-deb", "-c", deb]).stdout
    paths = {line.split()[-1].removeprefix("./") for line in listing.splitlines()}
    for p in EXPECTED_FILES:
        check(p in paths, f"the package lacks {p}:\n{listing}")
    check(not any(p.startswith("usr/local") for p in paths), "the package installs under /usr/local")
    check(not any(re.search(r"/man\d/.*\.\d$", p) for p in paths), "an uncompressed man page")

    scratch.mkdir(parents=True, exist_ok=True)
    control = scratch / "control"
    run(["dpkg-deb", "-e", deb, control])
    conffiles = (control / "conffiles").read_text().split()
    check(conffiles == ["/etc/mobiked/mobiked.toml"], f"conffiles: {conffiles}")
    for script in ("postinst", "prerm", "postrm"):
        path = control / script
        check(path.stat().st_mode & 0o111 != 0, f"{script} is not executable")
        run(["sh", "-n", path])
        check("mobiked.service" in path.read_text(), f"{script} does nothing with mobiked.service")

    root = scratch / "root"
    run(["dpkg-deb", "-x", deb, root])
    unit = (root / "lib/systemd/system/mobiked.service").read_text()
    check(unit == (SOURCE / "packaging/systemd/mobiked.service").read_text(),
          "the installed unit differs from packaging/systemd/mobiked.service")
    m = re.search(r"^ExecStart=(\S+) --config (\S+) ", unit, re.M)
    check(m is not None, "no ExecStart=BINARY --config FILE in the unit")
    for installed in m.groups():
        check((root / installed.lstrip("/")).is_file(), f"the unit's {installed} is not in the package")
    for page in root.glob("usr/share/man/man*/*.gz"):
        run(["gzip", "-t", page])
    return root


def check_completion(root: Path) -> None:
    script = root / "usr/share/bash-completion/completions/mobikectl"
    ctl, daemon = root / "usr/bin/mobikectl", root / "usr/sbin/mobiked"
    cases = [
        ([ctl, "cl"], "_mobikectl", {"cluster"}),
        ([ctl, "--socket", "/x", "cluster", "d"], "_mobikectl", {"drain"}),
        ([ctl, "switch", "--"], "_mobikectl", {"--all", "--rate", "--to", "--json"}),
        ([daemon, "--con"], "_mobiked", {"--config", "--config-reference"}),
    ]
    for words, fn, want in cases:
        words_text = " ".join(f"'{w}'" for w in words)
        got = run(["bash", "-c", f"source '{script}'; COMP_WORDS=({words_text}); "
                   f"COMP_CWORD={len(words) - 1}; {fn}; printf '%s\\n' \"${{COMPREPLY[@]}}\""]).stdout.split()
        check(want <= set(got), f"completing {words[1:]}: {got}, wanted {sorted(want)} among them")


def uncomment_examples(text: str) -> str:
    """The example's commented connections, as a user would uncomment them: lines whose
    rest is TOML (a table header or a key = value), not prose."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^#( *)(\[\[?[a-z.]+\]\]?|[a-z_]+ = .*)$", line)
        out.append(m.group(1) + m.group(2) if m else line)
    return "\n".join(out) + "\n"


def test(lab) -> None:
    build = build_dir()
    if build is None:
        raise Skip("MOBIKE_BUILD_DIR is not set (cpack needs the build's CPackConfig.cmake)")
    version = project_version(build)
    deb = build_package(lab, build)
    log(f"built {deb.name} ({deb.stat().st_size} bytes)")
    check_control(deb, version)
    root = check_contents(deb, lab.dir / "scratch")
    check_completion(root)

    installed_config = root / "etc/mobiked/mobiked.toml"
    r = run([root / "usr/sbin/mobiked", "--check-config", installed_config])
    check(r.stdout.strip() == "OK", f"mobiked --check-config on the example: {r.stdout}{r.stderr}")

    ns = lab.namespace("gw")
    ns.link_up("lo")
    config = root / "etc/mobiked/mobiked.toml"
    daemon, ctl = root / "usr/sbin/mobiked", root / "usr/bin/mobikectl"
    script = f"mount -t tmpfs none /run && exec {daemon} --config {config} --foreground"
    proc = lab.spawn(ns, ["unshare", "-m", "sh", "-c", script], name="mobiked")

    def ctl_run(*args, check_rc=True):
        # In the daemon's mount namespace: its /run, where the default socket path is.
        r = ns.run(["nsenter", "-t", str(proc.pid), "-m", str(ctl), *args], check=False, timeout=30)
        if check_rc and r.returncode != 0:
            raise Failure(f"mobikectl {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def answers():
        if not proc.alive():
            raise Failure(f"the installed mobiked exited:\n{proc.log_text()[-3000:]}")
        return ctl_run("stats", check_rc=False).returncode == 0
    wait_until(answers, 20, "the installed mobiked answering on /run/mobiked/mobiked.sock")
    conns = json.loads(ctl_run("list-conns", "--json").stdout)
    log(f"example configuration: list-conns {json.dumps(conns)}")
    check(conns == [], f"the example configuration has connections: {conns}")

    # The commented examples, uncommented, with the files they name.
    pki = Pki(lab.dir / "pki")
    gw = pki.issue("gw", "C=CH, O=mobiked test, CN=gw.example.org", san=["DNS:gw.example.org"])
    etc = config.parent
    shutil.copy(gw.cert, etc / "gw.crt")
    shutil.copy(gw.key, etc / "gw.key")
    (etc / "gw.key").chmod(0o600)
    shutil.copy(pki.root.cert, etc / "ca.crt")
    psk = etc / "office.psk"
    psk.write_text("0x" + "5a" * 32 + "\n")
    psk.chmod(0o600)
    # start = "initiate" would send to the example's documentation address.
    text = uncomment_examples(config.read_text()).replace('start = "initiate"', 'start = "none"')
    check("[[connection]]\n" in text and "[[pool]]\n" in text, "uncommenting found no example connection")
    config.write_text(text)
    r = run([daemon, "--check-config", config])
    check(r.stdout.strip() == "OK", f"mobiked --check-config on the uncommented examples: {r.stdout}{r.stderr}")
    proc.popen.send_signal(signal.SIGHUP)

    def both_loaded():
        names = {c["name"] for c in json.loads(ctl_run("list-conns", "--json").stdout)}
        return names == {"rw", "office"}
    wait_until(both_loaded, 10, "list-conns showing the examples' connections rw and office after SIGHUP")
    check("reload failed" not in proc.log_text(), f"the reload failed:\n{proc.log_text()[-2000:]}")

    proc.popen.send_signal(signal.SIGTERM)
    rc = proc.wait(10)
    check(rc == 0, f"mobiked exited {rc} on SIGTERM:\n{proc.log_text()[-2000:]}")
    log("installed package: built, unpacked, started with its example configuration, reloaded, stopped")


def requires():
    require_netns()
    require_commands("cpack", "dpkg-deb", "dpkg-shlibdeps", "nsenter", "unshare", "openssl", "bash", "gzip")


if __name__ == "__main__":
    run_test(test, "Debian package: build, unpack, start the installed daemon", timeout=240,
             requires=requires)
