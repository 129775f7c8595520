#!/usr/bin/env python3
"""packaging/systemd/mobiked.service, checked offline (no running systemd needed):

- `systemd-analyze verify` accepts it without a single warning (an unknown or misspelt
  setting is only a warning there, so warnings count as failures here);
- it is what mobiked needs: Type=notify with --foreground (the notifications come from
  the process systemd started), flags that `mobiked --help` knows, reload = SIGHUP, the
  runtime directory that holds mobiked's default control socket (read from the built
  daemon's --config-reference), exactly the capabilities the daemon uses, the TUN device,
  the address families it opens, and no ProtectKernelTunables= (proxy ARP writes
  /proc/sys/net/...);
- `systemd-analyze security --offline=yes` rates its exposure at most 5.0 ("OK").

Whether the daemon really runs under these settings needs a running systemd (systemd-run
or the unit itself); where the tests run there is none, so that is not checked here.

Usage: test_systemd_unit.py MOBIKED_BINARY. Exit 0 pass, 1 fail, 77 skipped.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "systemd" / "mobiked.service"


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def settings(text: str) -> dict[str, list[str]]:
    """Section.Key -> values in order (a key may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.setdefault(f"{section}.{k.strip()}", []).append(v.strip())
    return out


def one(s: dict, key: str) -> str:
    v = s.get(key)
    if not v or len(v) != 1:
        fail(f"{key}: expected one value, found {v}")
    return v[0]


def main() -> None:
    if len(sys.argv) != 2:
        fail("usage: test_systemd_unit.py MOBIKED_BINARY")
    mobiked = sys.argv[1]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print("SKIP: systemd-analyze not installed (Debian package systemd)", flush=True)
        sys.exit(77)
    if not os.access(mobiked, os.X_OK):
        fail(f"{mobiked} is not an executable mobiked")

    text = UNIT.read_text()
    s = settings(text)

    # verify checks that ExecStart's binary exists: point it at the built one, the rest
    # of the unit unchanged.
    with tempfile.TemporaryDirectory() as d:
        unit = Path(d) / "mobiked.service"
        unit.write_text(text.replace("/usr/sbin/mobiked", mobiked))
        r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120)
        out = (r.stdout + r.stderr).strip()
        if r.returncode != 0 or out:
            fail(f"systemd-analyze verify ({r.returncode}):\n{out}")
        print("systemd-analyze verify: clean", flush=True)
        r = subprocess.run([analyze, "security", "--offline=yes", "--threshold=50", "--no-pager", str(unit)],
                           capture_output=True, text=True, timeout=120)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
        if r.returncode != 0 or not m:
            fail(f"systemd-analyze security ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr}")
        print(f"systemd-analyze security: exposure {m.group(1)}", flush=True)

    # What the daemon needs from its unit.
    if one(s, "Service.Type") != "notify":
        fail("Type= is not notify")
    argv = one(s, "Service.ExecStart").split()
    if argv[0] != "/usr/sbin/mobiked" or "--foreground" not in argv or "--config" not in argv:
        fail(f"ExecStart= {argv}: /usr/sbin/mobiked --config FILE --foreground expected")
    help_text = subprocess.run([mobiked, "--help"], capture_output=True, text=True, timeout=30).stdout
    for flag in (a for a in argv[1:] if a.startswith("-")):
        if not re.search(rf"(^|[\s,]){re.escape(flag)}\b", help_text):
            fail(f"ExecStart= passes {flag}, which mobiked --help does not list:\n{help_text}")
    if one(s, "Service.ExecReload") != "/bin/kill -HUP $MAINPID":
        fail(f"ExecReload= {s.get('Service.ExecReload')}: SIGHUP to the main process expected")
    if one(s, "Service.Restart") != "on-failure":
        fail("Restart= is not on-failure")

    ref = subprocess.run([mobiked, "--config-reference"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r'^#?\s*socket\s*=\s*"([^"]+)"', ref, re.M)
    if not m:
        fail(f"no default socket in mobiked --config-reference:\n{ref[:2000]}")
    socket_dir = os.path.dirname(m.group(1))
    runtime = one(s, "Service.RuntimeDirectory")
    if socket_dir != f"/run/{runtime}":
        fail(f"the default control socket {m.group(1)} is not in RuntimeDirectory=/run/{runtime}, the only "
             f"writable place under ProtectSystem=strict")
    if one(s, "Service.ProtectSystem") != "strict":
        fail("ProtectSystem= is not strict")

    caps = set(one(s, "Service.CapabilityBoundingSet").split())
    want_caps = {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}
    if caps != want_caps:
        fail(f"CapabilityBoundingSet= {sorted(caps)}, expected {sorted(want_caps)}")
    families = set(one(s, "Service.RestrictAddressFamilies").split())
    want_families = {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"}
    if families != want_families:
        fail(f"RestrictAddressFamilies= {sorted(families)}, expected {sorted(want_families)}")
    if one(s, "Service.DevicePolicy") != "closed" or "/dev/net/tun rw" not in s.get("Service.DeviceAllow", []):
        fail("DevicePolicy=closed with DeviceAllow=/dev/net/tun rw expected (userspace data plane)")
    if "Service.ProtectKernelTunables" in s:
        fail("ProtectKernelTunables= would make /proc/sys read-only; proxy ARP writes there")
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "ProtectKernelModules", "LockPersonality",
                "MemoryDenyWriteExecute"):
        if one(s, f"Service.{key}") != "yes":
            fail(f"{key}= is not yes")
    if one(s, "Service.SystemCallArchitectures") != "native":
        fail("SystemCallArchitectures= is not native")
    print("unit settings match what mobiked needs", flush=True)


main()
