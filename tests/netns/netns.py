"""Network-namespace test harness for mobiked (Python 3 standard library only).

A test builds a small network of namespaces joined by veth pairs, with a real Linux NAT
(iptables MASQUERADE) where needed, runs daemons inside them and checks what crosses.

    from netns import Lab, run_test
    from topology import nat_topology

    def test(lab):
        topo = nat_topology(lab)
        topo.ini.run(["ping", "-c1", topo.RES_ADDR])

    run_test(test, "my test")

The other modules of tests/netns build on this one: topology (the test networks and their
address plan), mobiked (mobiked and mobikectl), peers (mobiked or strongSwan behind one
interface), scenario, mobike_scenarios and switch_scenarios (the scenarios of issues 4
and 5). ctest puts this directory on PYTHONPATH and sets PYTHONDONTWRITEBYTECODE (see
CMakeLists.txt); run by hand, a test finds the modules next to it, and each test file sets
sys.dont_write_bytecode itself, before its imports, so that no __pycache__ appears here.

Everything a Lab creates (namespaces, processes, the temporary directory) is removed when
the Lab closes, also on an exception, on SIGTERM/SIGINT/SIGHUP and through atexit. A
test killed with SIGKILL cannot clean up; the next Lab reaps namespaces whose creating
process is gone (their names carry its pid), so leftovers never pile up.

Exit codes of run_test: 0 pass, 1 fail, 77 skipped (ctest SKIP_RETURN_CODE).

A test file with a line "netns-params: a b c" is registered as one ctest per parameter
(netns.<name>.a, ...), which it gets as its one argument: netns_param() reads it.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_SKIP = 77

NS_PREFIX = "mbk"  # namespace names: mbk-<pid>-<n>-<role>


class Skip(Exception):
    """The test cannot run here (not a failure): exit 77 with the reason."""


class Failure(AssertionError):
    """A check failed: exit 1 with the message."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def in_uml() -> bool:
    """True inside the user-mode-linux kernel of tests/uml/uml_run.py, which has ESP."""
    return os.environ.get("MOBIKE_UML") == "1"


def no_kernel_esp(reason: str) -> None:
    """The kernel refused ESP: skipped on a host without it, a failure where it must work."""
    if in_uml():
        raise Failure(f"user-mode-linux has ESP, yet: {reason}")
    raise Skip(reason)


def xfrm_states(ns: "Namespace") -> list[dict]:
    """The kernel's SAs in `ns` as `ip -s xfrm state` shows them: src, dst, spi (8 hex
    digits), reqid, sport/dport (ESP-in-UDP, else None), seq/oseq (the replay state's
    inbound top and outbound counter), bytes and packets (lifetime current). Left out:
    the kernel's placeholders of acquires (spi 0), which a packet meeting a policy
    without an SA leaves for 30 s while a daemon listens for ACQUIRE."""
    out = ns.run(["ip", "-s", "xfrm", "state"]).stdout
    sas: list[dict] = []
    for block in re.split(r"^(?=src )", out, flags=re.M):
        m = re.match(r"src (\S+) dst (\S+)", block)
        if not m:
            continue
        sa = {"src": m.group(1), "dst": m.group(2), "sport": None, "dport": None, "seq": 0, "oseq": 0}
        m = re.search(r"proto esp spi 0x([0-9a-f]+)(?:\(\d+\))? reqid (\d+)", block)
        if not m:
            continue
        if int(m.group(1), 16) == 0:
            continue
        sa["spi"], sa["reqid"] = f"{int(m.group(1), 16):08x}", int(m.group(2))
        m = re.search(r"encap type espinudp sport (\d+) dport (\d+)", block)
        if m:
            sa["sport"], sa["dport"] = int(m.group(1)), int(m.group(2))
        m = re.search(r"[ ,]seq 0x([0-9a-f]+), oseq-hi 0x([0-9a-f]+), oseq 0x([0-9a-f]+)", block) or \
            re.search(r"[ ,]seq 0x([0-9a-f]+)(), oseq 0x([0-9a-f]+)", block)
        if m:
            sa["seq"] = int(m.group(1), 16)
            sa["oseq"] = (int(m.group(2) or "0", 16) << 32) + int(m.group(3), 16)
        m = re.search(r"lifetime current:\s*\n\s*(\d+)\(bytes\), (\d+)\(packets\)", block)
        sa["bytes"], sa["packets"] = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        sas.append(sa)
    return sas


def kernel_path_problems(ns: "Namespace", view: dict, min_oseq: int | None = None) -> list[str]:
    """Where the kernel's SAs of a Child SA disagree with a peer's view of it (local and
    remote (address, port), spi_in, spi_out): the outbound SA must run local -> remote
    (UDP-encapsulated on those ports), the inbound one remote -> local, both must have
    carried packets, and the outbound sequence number must be at least min_oseq (its
    value before an address change plus the packets sent since: a re-created SA that
    started again from 1 stays below)."""
    sas = {sa["spi"]: sa for sa in xfrm_states(ns)}
    (laddr, lport), (raddr, rport) = view["local"], view["remote"]
    problems = []
    out, inb = sas.get(view["spi_out"]), sas.get(view["spi_in"])
    if out is None or inb is None:
        return [f"{ns.role}: the kernel has no SA with SPI {view['spi_out'] if out is None else view['spi_in']} "
                f"(it has {sorted(sas)})"]
    if (out["src"], out["dst"]) != (laddr, raddr):
        problems.append(f"{ns.role}: outbound SA {out['spi']} runs {out['src']} -> {out['dst']}, "
                        f"the SA {laddr} -> {raddr}")
    if (inb["src"], inb["dst"]) != (raddr, laddr):
        problems.append(f"{ns.role}: inbound SA {inb['spi']} runs {inb['src']} -> {inb['dst']}, "
                        f"the SA {raddr} -> {laddr}")
    if out["sport"] is not None and (out["sport"], out["dport"]) != (lport, rport):
        problems.append(f"{ns.role}: outbound SA encapsulates {out['sport']} -> {out['dport']}, "
                        f"the SA {lport} -> {rport}")
    if out["packets"] == 0 or inb["packets"] == 0:
        problems.append(f"{ns.role}: the kernel's SAs carried nothing: out {out['packets']}, in {inb['packets']} packets")
    if min_oseq is not None and out["oseq"] < min_oseq:
        problems.append(f"{ns.role}: outbound sequence numbers started again: {out['oseq']}, "
                        f"expected at least {min_oseq}")
    # The policies whose templates name these SAs (by reqid) must tunnel between the same
    # addresses: out local -> remote, in and fwd remote -> local.
    pols = [p for p in xfrm_policies(ns) if p["reqid"] == out["reqid"]]
    dirs = {p["dir"] for p in pols}
    if not {"out", "in"} <= dirs:
        problems.append(f"{ns.role}: no out and in policies with reqid {out['reqid']} (found {sorted(dirs)})")
    for p in pols:
        want = (laddr, raddr) if p["dir"] == "out" else (raddr, laddr)
        if (p["tmpl_src"], p["tmpl_dst"]) != want:
            problems.append(f"{ns.role}: {p['dir']} policy {p['src']} -> {p['dst']} tunnels "
                            f"{p['tmpl_src']} -> {p['tmpl_dst']}, the SA {want[0]} -> {want[1]}")
    return problems


def xfrm_policies(ns: "Namespace") -> list[dict]:
    """The kernel's policies with an ESP template (not the IKE sockets' own), as `ip xfrm
    policy` shows them: src, dst (selectors), dir, tmpl_src, tmpl_dst, reqid."""
    out = ns.run(["ip", "xfrm", "policy"]).stdout
    pols: list[dict] = []
    for block in re.split(r"^(?=src )", out, flags=re.M):
        m = re.match(r"src (\S+) dst (\S+)", block)
        d = re.search(r"^\s+dir (\w+)", block, re.M)
        t = re.search(r"^\s+tmpl src (\S+) dst (\S+)\s+proto esp(?: spi \S+)? reqid (\d+)", block, re.M)
        if m and d and t:
            pols.append({"src": m.group(1), "dst": m.group(2), "dir": d.group(1), "tmpl_src": t.group(1),
                         "tmpl_dst": t.group(2), "reqid": int(t.group(3))})
    return pols


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- prerequisites


def require_root() -> None:
    if os.geteuid() != 0:
        raise Skip("needs root (network namespaces, veth, iptables)")


def require_commands(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise Skip("missing command(s): " + ", ".join(missing))


def require_netns() -> None:
    require_root()
    require_commands("ip")
    probe = f"{NS_PREFIX}-{os.getpid()}-probe"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        raise Skip("cannot create a network namespace: " + r.stderr.strip())
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def charon_binary() -> str:
    """The charon daemon: Debian's strongswan-charon, else charon-systemd (the binary in
    the charon-systemd package, which is what the project's dependency list installs)."""
    for path in ("/usr/lib/ipsec/charon", "/usr/libexec/ipsec/charon", "/usr/sbin/charon-systemd"):
        if os.access(path, os.X_OK):
            return path
    raise Skip("strongSwan's charon not installed (charon-systemd / strongswan-charon)")


def require_strongswan() -> str:
    require_commands("swanctl", "unshare", "mount")
    return charon_binary()


def build_dir() -> Path | None:
    d = os.environ.get("MOBIKE_BUILD_DIR")
    return Path(d) if d else None


def find_binary(name: str) -> Path:
    """A binary built by this project. CMake passes exact paths as MOBIKE_BIN_<NAME>
    (e.g. MOBIKE_BIN_UDP_PROBE); otherwise it is looked for under MOBIKE_BUILD_DIR.
    A missing binary is a failure, not a skip: the build is expected to produce it."""
    env = os.environ.get("MOBIKE_BIN_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper())
    if env and os.access(env, os.X_OK):
        return Path(env)
    root = build_dir()
    if root is not None and root.is_dir():
        for sub in ("", "bin", "tests/netns", "src/daemon", "src/tools"):
            p = root / sub / name
            if p.is_file() and os.access(p, os.X_OK):
                return p
    raise Failure(f"binary {name!r} not found (set MOBIKE_BUILD_DIR or MOBIKE_BIN_"
                  f"{name.upper().replace('-', '_')}; build it first)")


# --------------------------------------------------------------------------- commands


def _run(argv: Sequence[str], *, check_rc: bool = True, timeout: float = 60,
         input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                       input=input, env=env)
    if check_rc and r.returncode != 0:
        raise Failure(f"command failed ({r.returncode}): {shlex.join(argv)}\n"
                      f"stdout: {r.stdout.strip()}\nstderr: {r.stderr.strip()}")
    return r


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               interval: float = 0.1):
    """Polls predicate until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Failure(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- processes


class Process:
    """A background process in a namespace; stdout and stderr go to a log file."""

    def __init__(self, lab: "Lab", name: str, argv: Sequence[str], log_path: Path,
                 popen: subprocess.Popen, stdin_pipe: bool):
        self.lab = lab
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.popen = popen
        self.stdin_pipe = stdin_pipe

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = 10) -> re.Match:
        rx = re.compile(pattern, re.M)

        def found():
            m = rx.search(self.log_text())
            if m is None and not self.alive():
                raise Failure(f"{self.name} exited ({self.popen.returncode}) before logging "
                              f"/{pattern}/; log {self.log_path}:\n{tail(self.log_text())}")
            return m
        return wait_until(found, timeout, f"{self.name} to log /{pattern}/")

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"{self.name} still running after {timeout:g}s") from None

    def stop(self, timeout: float = 5) -> int | None:
        """SIGTERM to the process group, SIGKILL after timeout."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(5)
        # Children that left the group still die with the namespace sweep in Lab.close().
        for f in (self.popen.stdin, self.popen.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        return self.popen.returncode


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- namespaces


class Namespace:
    def __init__(self, lab: "Lab", role: str, name: str):
        self.lab = lab
        self.role = role
        self.name = name

    def __repr__(self) -> str:
        return f"Namespace({self.role}={self.name})"

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str] | str, *, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Runs a command (argv list, or a string for sh -c) inside the namespace."""
        if isinstance(argv, str):
            argv = ["sh", "-c", argv]
        return _run(self.argv(argv), check_rc=check, timeout=timeout, input=input)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run(["ip", "-n", self.name, *args], check_rc=check)

    def spawn(self, argv: Sequence[str], name: str | None = None, *, env: dict | None = None,
              stdin_pipe: bool = False, stdout_pipe: bool = False) -> Process:
        return self.lab.spawn(self, argv, name=name, env=env, stdin_pipe=stdin_pipe,
                              stdout_pipe=stdout_pipe)

    # --- configuration helpers
    def link_up(self, dev: str) -> None:
        self.ip("link", "set", dev, "up")

    def add_address(self, dev: str, cidr: str) -> None:
        # nodad: an IPv6 address must be usable at once, not after duplicate detection.
        extra = ["nodad"] if ":" in cidr else []
        self.ip("addr", "add", cidr, "dev", dev, *extra)

    def del_address(self, dev: str, cidr: str) -> None:
        self.ip("addr", "del", cidr, "dev", dev)

    def addresses(self, dev: str | None = None) -> list[str]:
        """Configured addresses (without prefix length), both families."""
        args = ["-o", "addr", "show"] + (["dev", dev] if dev else [])
        out = self.ip(*args).stdout
        return [m.group(1) for m in re.finditer(r"\binet6? ([0-9a-fA-F.:]+)/", out)]

    def add_route(self, dst: str, via: str | None = None, dev: str | None = None,
                  *extra: str) -> None:
        args = ["route", "add", dst]
        if via:
            args += ["via", via]
        if dev:
            args += ["dev", dev]
        self.ip(*args, *extra)

    def sysctl(self, key: str, value: object) -> None:
        self.run(["sysctl", "-q", "-w", f"{key}={value}"])

    def iptables(self, *args: str, v6: bool = False) -> subprocess.CompletedProcess:
        return self.run(["ip6tables" if v6 else "iptables", "-w", *args])

    def pids(self) -> list[int]:
        r = _run(["ip", "netns", "pids", self.name], check_rc=False)
        return [int(p) for p in r.stdout.split() if p.isdigit()]

    def etc_file(self, name: str, text: str) -> Path:
        """A file that processes started in this namespace from now on see as /etc/<name>
        (`ip netns exec` bind-mounts /etc/netns/<namespace>/* over /etc): a resolv.conf of
        the namespace's own, say. The directory goes with the namespace."""
        d = ETC_NETNS / self.name
        d.mkdir(parents=True, exist_ok=True)
        path = d / name
        path.write_text(text)
        return path


def _ns_owner_alive(name: str) -> bool:
    m = re.match(rf"{NS_PREFIX}-(\d+)-", name)
    if not m:
        return True  # not ours: never touched
    pid = int(m.group(1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


ETC_NETNS = Path("/etc/netns")  # per-namespace /etc files of `ip netns exec`


def _delete_namespace(name: str) -> None:
    # Processes still inside (a daemon that ignored SIGTERM, a child that left the
    # process group) would keep interfaces and sockets alive after the name is gone.
    r = _run(["ip", "netns", "pids", name], check_rc=False)
    for p in r.stdout.split():
        if p.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(p), signal.SIGKILL)
    _run(["ip", "netns", "del", name], check_rc=False)
    shutil.rmtree(ETC_NETNS / name, ignore_errors=True)


def reap_stale_namespaces() -> list[str]:
    """Deletes namespaces left by earlier harness runs that were SIGKILLed."""
    r = _run(["ip", "netns", "list"], check_rc=False)
    stale = []
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(NS_PREFIX + "-") and not _ns_owner_alive(name):
            _delete_namespace(name)
            stale.append(name)
    # /etc files of namespaces already gone (Namespace.etc_file).
    for d in ETC_NETNS.glob(NS_PREFIX + "-*") if ETC_NETNS.is_dir() else []:
        if not _ns_owner_alive(d.name):
            shutil.rmtree(d, ignore_errors=True)
    return stale


_live_labs: list["Lab"] = []
_handlers_installed = False


def _cleanup_all() -> None:
    for lab in list(_live_labs):
        lab.close()


def _on_signal(signum, _frame):
    # Unwinding through SystemExit runs the with-blocks' cleanup and then atexit.
    raise SystemExit(128 + signum)


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_cleanup_all)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


class Lab:
    """Owns namespaces, processes and a temporary directory; a context manager."""

    _counter = itertools.count(1)

    def __init__(self, keep_dir: bool = False):
        _install_handlers()
        reap_stale_namespaces()
        self.dir = Path(tempfile.mkdtemp(prefix="mobike-netns-"))
        self.keep_dir = keep_dir or os.environ.get("MOBIKE_KEEP_LOGS") == "1"
        self.namespaces: list[Namespace] = []
        self.processes: list[Process] = []
        self.failed = False
        self._closed = False
        _live_labs.append(self)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not issubclass(exc_type, Skip):
            self.failed = True
        self.close()

    # --- creation
    def namespace(self, role: str) -> Namespace:
        name = f"{NS_PREFIX}-{os.getpid()}-{next(Lab._counter)}-{role}"
        _run(["ip", "netns", "add", name])
        ns = Namespace(self, role, name)
        self.namespaces.append(ns)
        ns.link_up("lo")
        return ns

    def veth(self, a: Namespace, dev_a: str, b: Namespace, dev_b: str) -> None:
        # Created inside `a` with the peer placed straight into `b`, so the names never
        # exist in the root namespace (where parallel tests could collide).
        a.ip("link", "add", dev_a, "type", "veth", "peer", "name", dev_b, "netns", b.name)
        a.link_up(dev_a)
        b.link_up(dev_b)

    def spawn(self, ns: Namespace | None, argv: Sequence[str], name: str | None = None, *,
              env: dict | None = None, stdin_pipe: bool = False,
              stdout_pipe: bool = False) -> Process:
        """Starts argv in ns (or the root namespace if None) in its own process group.
        With stdout_pipe, stdout is readable by the test and only stderr is logged."""
        name = name or Path(argv[0]).name
        log_path = self.dir / f"{name}.log"
        n = 2
        while log_path.exists():
            log_path = self.dir / f"{name}-{n}.log"
            n += 1
        full = ns.argv(argv) if ns else list(argv)
        logf = open(log_path, "w")
        try:
            popen = subprocess.Popen(
                full, stdout=subprocess.PIPE if stdout_pipe else logf,
                stderr=logf, stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                env=env, start_new_session=True, text=True, bufsize=1)
        finally:
            logf.close()
        p = Process(self, name, full, log_path, popen, stdin_pipe)
        self.processes.append(p)
        return p

    # --- teardown
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for p in reversed(self.processes):
            with contextlib.suppress(Exception):
                p.stop()
        for ns in reversed(self.namespaces):
            with contextlib.suppress(Exception):
                _delete_namespace(ns.name)
        if self in _live_labs:
            _live_labs.remove(self)
        if self.failed or self.keep_dir:
            print(f"logs kept in {self.dir}", flush=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def dump_logs(self, lines: int = 60) -> None:
        """Prints the tail of every log in the Lab's directory (process output, charon's
        filelog, ...), for a failure report."""
        for path in sorted(self.dir.rglob("*.log")):
            text = path.read_text(errors="replace")
            if text.strip():
                print(f"---- {path.relative_to(self.dir)}, last {lines} lines", flush=True)
                print(tail(text, lines), flush=True)


# --------------------------------------------------------------------------- strongSwan


@dataclass
class Conn:
    """One swanctl connection with one CHILD_SA: PSK authentication unless local_auth /
    remote_auth say "pubkey" (certificates; see the fields at the end). local_id None:
    no id (with a certificate charon then sends its subject DN); remote_id None: %any."""
    name: str
    local_id: str | None
    remote_id: str | None
    psk: str = "mobike-test-psk-0123456789"
    local_addrs: list[str] = field(default_factory=list)   # empty: %any
    remote_addrs: list[str] = field(default_factory=list)  # empty: %any (responder)
    local_port: int | None = None
    remote_port: int | None = None
    proposals: str = "aes128gcm16-prfsha256-x25519"
    esp_proposals: str = "aes128gcm16"
    local_ts: list[str] = field(default_factory=list)
    remote_ts: list[str] = field(default_factory=list)
    child: str | None = None  # CHILD_SA name, default: <name>
    mobike: bool = True
    encap: bool = False  # force UDP encapsulation even without a NAT
    dpd_delay: int | None = None  # seconds
    dpd_action: str | None = None  # clear | trap | restart
    start_action: str | None = None  # none | trap | start
    close_action: str | None = None
    rekey_time: str | None = None  # IKE_SA, e.g. "4h"; "0" disables
    child_rekey_time: str | None = None
    extra: dict = field(default_factory=dict)  # more connection-level settings
    child_extra: dict = field(default_factory=dict)
    # Certificate authentication (charon's "pubkey"): paths of PEM (or DER) files, which
    # Charon.load() hands to swanctl. local_certs: our certificate first, then the
    # intermediate CAs charon may send with it (loaded as CA certificates, x509ca);
    # local_key: its private key; cacerts: the trust anchors the peer's certificate must
    # chain to (remote.cacerts); crls: CRLs (x509crl; charon's revocation plugin checks
    # them, default "relaxed": refused only when a CRL lists the certificate).
    local_auth: str = "psk"   # psk | pubkey
    remote_auth: str = "psk"
    local_certs: list[str] = field(default_factory=list)
    local_key: str | None = None
    cacerts: list[str] = field(default_factory=list)
    crls: list[str] = field(default_factory=list)
    send_cert: str | None = None  # ifasked (charon's default) | always | never
    send_certreq: bool | None = None  # charon's default: yes
    # EAP (local_auth / remote_auth "eap-mschapv2"): eap_id of each end (None: left out,
    # charon's default is the IKE identity; "%any" on the gateway asks by EAP-Identity)
    # and EAP passwords by identity, written as secrets { eap-... }.
    local_eap_id: str | None = None
    remote_eap_id: str | None = None
    eap_secrets: dict = field(default_factory=dict)

    @property
    def child_name(self) -> str:
        return self.child or self.name

    @property
    def uses_psk(self) -> bool:
        return "psk" in (self.local_auth, self.remote_auth)

    @property
    def uses_certs(self) -> bool:
        return bool(self.local_certs or self.local_key or self.cacerts or self.crls)


def _yesno(b: bool) -> str:
    return "yes" if b else "no"


def _quote(v: object) -> str:
    s = str(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _path(p: object) -> str:
    """A file name for swanctl.conf, unquoted (lists are comma-separated)."""
    s = str(p)
    if re.search(r'[\s,"{}=#]', s):
        raise ValueError(f"path unusable in swanctl.conf: {s!r}")
    return s


def swanctl_conf(conns: Iterable[Conn]) -> str:
    conns = list(conns)
    out = ["connections {"]
    for c in conns:
        out.append(f"  {c.name} {{")
        out.append("    version = 2")
        out.append(f"    local_addrs = {','.join(c.local_addrs) or '%any'}")
        out.append(f"    remote_addrs = {','.join(c.remote_addrs) or '%any'}")
        if c.local_port is not None:
            out.append(f"    local_port = {c.local_port}")
        if c.remote_port is not None:
            out.append(f"    remote_port = {c.remote_port}")
        out.append(f"    proposals = {c.proposals}")
        out.append(f"    mobike = {_yesno(c.mobike)}")
        out.append(f"    encap = {_yesno(c.encap)}")
        if c.dpd_delay is not None:
            out.append(f"    dpd_delay = {c.dpd_delay}s")
        if c.rekey_time is not None:
            out.append(f"    rekey_time = {c.rekey_time}")
        if c.send_cert is not None:
            out.append(f"    send_cert = {c.send_cert}")
        if c.send_certreq is not None:
            out.append(f"    send_certreq = {_yesno(c.send_certreq)}")
        for k, v in c.extra.items():
            out.append(f"    {k} = {v}")
        out.append("    local {")
        out.append(f"      auth = {c.local_auth}")
        if c.local_id is not None:
            out.append(f"      id = {_quote(c.local_id)}")
        if c.local_eap_id is not None:
            out.append(f"      eap_id = {_quote(c.local_eap_id)}")
        if c.local_auth in ("pubkey", "eap-tls") and c.local_certs:
            # Absolute paths are allowed (else relative to the x509 directory); only our
            # own certificate, intermediates go in as CA certificates (Charon.load).
            out.append(f"      certs = {_path(c.local_certs[0])}")
        out.append("    }")
        out.append("    remote {")
        out.append(f"      auth = {c.remote_auth}")
        if c.remote_id is not None:
            out.append(f"      id = {_quote(c.remote_id)}")
        if c.remote_eap_id is not None:
            out.append(f"      eap_id = {_quote(c.remote_eap_id)}")
        if c.remote_auth in ("pubkey", "eap-tls") and c.cacerts:
            out.append(f"      cacerts = {','.join(_path(x) for x in c.cacerts)}")
        out.append("    }")
        out.append("    children {")
        out.append(f"      {c.child_name} {{")
        out.append("        mode = tunnel")
        out.append(f"        esp_proposals = {c.esp_proposals}")
        if c.local_ts:
            out.append(f"        local_ts = {','.join(c.local_ts)}")
        if c.remote_ts:
            out.append(f"        remote_ts = {','.join(c.remote_ts)}")
        for key, val in (("dpd_action", c.dpd_action), ("start_action", c.start_action),
                         ("close_action", c.close_action), ("rekey_time", c.child_rekey_time)):
            if val is not None:
                out.append(f"        {key} = {val}")
        for k, v in c.child_extra.items():
            out.append(f"        {k} = {v}")
        out.append("      }")
        out.append("    }")
        out.append("  }")
    out.append("}")
    out.append("secrets {")
    for i, c in enumerate(conns):
        if c.uses_psk:
            out.append(f"  ike-{i} {{")
            for key, ident in (("id-a", c.local_id), ("id-b", c.remote_id)):
                if ident is not None:
                    out.append(f"    {key} = {_quote(ident)}")
            out.append(f"    secret = {_quote(c.psk)}")
            out.append("  }")
        for n, (ident, password) in enumerate(c.eap_secrets.items()):
            out.append(f"  eap-{i}-{n} {{")
            out.append(f"    id = {_quote(ident)}")
            out.append(f"    secret = {_quote(password)}")
            out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def strongswan_conf(vici_socket: Path, log_path: Path, *, port: int = 500,
                    port_nat_t: int = 4500, retransmit_timeout: float | None = None,
                    retransmit_tries: int | None = None, log_levels: dict | None = None,
                    extra: str = "", extra_plugins: str = "", libtls: dict | None = None) -> str:
    """Settings for one charon (read by charon and charon-systemd: the latter falls back
    to the charon section). Plugins are listed explicitly so the host's defaults (ha,
    dhcp, farp, bypass-lan, ...) cannot change a test; kernel-libipsec comes before
    kernel-netlink so that it provides the IPsec backend (first registered wins) while
    kernel-netlink provides addresses and routes. Inside user-mode-linux (in_uml())
    kernel-libipsec is left out and kernel-netlink puts the SAs in the kernel.
    extra goes into the charon section; libtls: options of strongSwan's TLS stack (the
    eap-tls plugin's), written as the top-level libtls section, e.g. {"version_min": "1.3",
    "version_max": "1.3"} (strongSwan 5.9's defaults are 1.2 both)."""
    merged = {"default": 1, "ike": 2, "cfg": 2, "knl": 2, "net": 2, "esp": 2, "enc": 1}
    merged.update(log_levels or {})
    levels = "\n      ".join(f"{k} = {v}" for k, v in merged.items())
    retrans = ""
    if retransmit_timeout is not None:
        retrans += f"  retransmit_timeout = {retransmit_timeout}\n"
    if retransmit_tries is not None:
        retrans += f"  retransmit_tries = {retransmit_tries}\n"
    # Inside user-mode-linux the kernel has ESP: charon's normal backend, kernel-netlink,
    # does IPsec there as it does on a real gateway.
    libipsec = "" if in_uml() else "kernel-libipsec "
    plugins = ("random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints "
               "curve25519 aes gcm sha1 sha2 hmac kdf counters "
               f"{libipsec}kernel-netlink socket-default vici updown")
    if extra_plugins:
        plugins += " " + extra_plugins
    tls = ""
    if libtls:
        tls = "libtls {\n" + "".join(f"  {k} = {v}\n" for k, v in libtls.items()) + "}\n"
    return f"""charon {{
  load_modular = no
  load = {plugins}
  port = {port}
  port_nat_t = {port_nat_t}
{retrans}  filelog {{
    charon {{
      path = {log_path}
      time_format = %H:%M:%S
      ike_name = yes
      append = no
      flush_line = yes
      {levels}
    }}
  }}
  syslog {{
    daemon {{
      default = -1
    }}
    auth {{
      default = -1
    }}
  }}
  journal {{
    default = -1
  }}
  plugins {{
    vici {{
      socket = unix://{vici_socket}
    }}
    kernel-libipsec {{
      load = {"no" if in_uml() else "yes"}
    }}
    bypass-lan {{
      load = no
    }}
  }}
{extra}}}
{tls}"""


def parse_vici_pretty(text: str) -> list[tuple[str, dict]]:
    """Parses swanctl --pretty output: a sequence of `<header> {` ... `}` blocks whose
    bodies hold `key = value`, `key {` sections and `key = [` lists. Returns
    [(header, dict)], e.g. [("list-sa event", {"conn": {...}}), ("list-sas reply", {})].
    Chosen over --raw, whose space-separated key=value cannot carry values with spaces."""
    blocks: list[tuple[str, dict]] = []
    stack: list = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not stack:
            if line.endswith("{"):
                top: dict = {}
                blocks.append((line[:-1].strip(), top))
                stack.append(top)
            continue  # lines outside a block: swanctl's own messages
        cur = stack[-1]
        if line == "}" or line == "]":
            stack.pop()
        elif isinstance(cur, list):
            cur.append(line)
        elif line.endswith(" {") or line == "{":
            d: dict = {}
            cur[line[:-1].strip()] = d
            stack.append(d)
        elif line.endswith("["):  # "key = [" (swanctl 5.9) or "key ["
            lst: list = []
            cur[line[:-1].strip().rstrip("=").strip()] = lst
            stack.append(lst)
        elif " = " in line:
            k, v = line.split(" = ", 1)
            cur[k.strip()] = v
        elif line.endswith(" ="):
            cur[line[:-2].strip()] = ""
        else:
            cur[line] = ""
    return blocks


class Charon:
    """One strongSwan charon in a namespace, driven through swanctl over its own vici
    socket in the Lab's directory."""

    def __init__(self, lab: Lab, ns: Namespace, name: str | None = None, *,
                 port: int = 500, port_nat_t: int = 4500,
                 retransmit_timeout: float | None = None,
                 retransmit_tries: int | None = None, log_levels: dict | None = None,
                 extra_conf: str = "", extra_plugins: str = "", libtls: dict | None = None):
        """log_levels: charon's per-subsystem levels ({"ike": 3}); the environment's
        MOBIKE_CHARON_LOG_LEVELS ("ike=3,enc=3") adds to them when debugging a test.
        libtls: strongswan.conf's libtls options ({"version_min": "1.3"}), see
        strongswan_conf()."""
        env_levels = os.environ.get("MOBIKE_CHARON_LOG_LEVELS", "")
        log_levels = dict(log_levels or {})
        for item in filter(None, (x.strip() for x in env_levels.split(","))):
            key, _, val = item.partition("=")
            log_levels[key.strip()] = int(val)
        self.lab = lab
        self.ns = ns
        self.name = name or f"charon-{ns.role}"
        self.dir = lab.dir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.vici = self.dir / "charon.vici"
        self.uri = f"unix://{self.vici}"
        self.log_path = self.dir / "charon.log"
        self.conf_path = self.dir / "strongswan.conf"
        self.swanctl_path = self.dir / "swanctl.conf"
        # swanctl --file reads its credential directories (x509, x509ca, x509crl, private,
        # ...) next to that file, here, not in /etc/swanctl (nor $SWANCTL_DIR).
        self.swanctl_dir = self.dir
        self.conf_path.write_text(strongswan_conf(
            self.vici, self.log_path, port=port, port_nat_t=port_nat_t,
            retransmit_timeout=retransmit_timeout, retransmit_tries=retransmit_tries,
            log_levels=log_levels, extra=extra_conf, extra_plugins=extra_plugins, libtls=libtls))
        self.process: Process | None = None

    def start(self, timeout: float = 20) -> "Charon":
        binary = require_strongswan()
        # A private /run per charon: its pid file and default sockets live there, so
        # several charons (one per namespace) do not trip over each other.
        script = (f"mount -t tmpfs none /run && STRONGSWAN_CONF={shlex.quote(str(self.conf_path))} "
                  f"exec {shlex.quote(binary)}")
        self.process = self.lab.spawn(self.ns, ["unshare", "-m", "sh", "-c", script],
                                      name=self.name)

        def ready():
            if not self.process.alive():
                raise Failure(f"{self.name} exited ({self.process.popen.returncode}):\n"
                              f"{tail(self.process.log_text())}\n{tail(self.log_text())}")
            if not self.vici.exists():
                return False
            return self.swanctl("--stats", check=False).returncode == 0
        wait_until(ready, timeout, f"{self.name} vici socket")
        return self

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = 10) -> re.Match:
        rx = re.compile(pattern, re.M)
        return wait_until(lambda: rx.search(self.log_text()), timeout,
                          f"{self.name} log /{pattern}/")

    def swanctl(self, *args: str, check: bool = True, timeout: float = 60):
        # swanctl runs in the root namespace: it only talks to the vici socket file.
        return _run(["swanctl", *args, "--uri", self.uri], check_rc=check, timeout=timeout)

    def _stage_credentials(self, conns: list[Conn]) -> None:
        """Puts what swanctl.conf cannot reference into swanctl's directories under
        self.swanctl_dir: private keys (private: swanctl.conf's secrets only give
        passphrases for the files there), intermediate CA certificates (x509ca) and CRLs
        (x509crl). Certificates and trust anchors swanctl.conf names by absolute path."""
        subdirs = ("x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "pubkey",
                   "private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12")
        for sub in subdirs:
            (self.swanctl_dir / sub).mkdir(parents=True, exist_ok=True)
        for i, c in enumerate(conns):
            if c.local_key:
                dst = self.swanctl_dir / "private" / f"{c.name}-{i}-{Path(c.local_key).name}"
                fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(Path(c.local_key).read_bytes())
            for j, path in enumerate(c.local_certs[1:]):
                shutil.copyfile(path, self.swanctl_dir / "x509ca" / f"{c.name}-{i}-im{j}-{Path(path).name}")
            for j, path in enumerate(c.crls):
                shutil.copyfile(path, self.swanctl_dir / "x509crl" / f"{c.name}-{i}-crl{j}-{Path(path).name}")

    def load(self, conns: Iterable[Conn], pools: dict[str, str] | None = None) -> None:
        """pools: swanctl address pools by name ({"rw": "10.3.0.0/24"}), which a Conn
        names in extra={"pools": "rw"}."""
        conns = list(conns)
        if any(c.uses_certs for c in conns):
            self._stage_credentials(conns)
        text = swanctl_conf(conns)
        if pools:
            text += "pools {\n" + "".join(f"  {name} {{\n    addrs = {addrs}\n  }}\n"
                                          for name, addrs in pools.items()) + "}\n"
        self.swanctl_path.write_text(text)
        self.swanctl("--load-all", "--file", str(self.swanctl_path))

    def list_certs(self) -> str:
        """swanctl --list-certs: what charon holds (certificates, CAs, CRLs)."""
        return self.swanctl("--list-certs").stdout

    def initiate(self, child: str | None = None, ike: str | None = None,
                 timeout: int = 30) -> subprocess.CompletedProcess:
        args = ["--initiate", "--timeout", str(timeout)]
        if child:
            args += ["--child", child]
        if ike:
            args += ["--ike", ike]
        return self.swanctl(*args, timeout=timeout + 10)

    def terminate(self, ike: str | None = None, child: str | None = None,
                  timeout: int = 30, force: bool = False) -> subprocess.CompletedProcess:
        args = ["--terminate", "--timeout", str(timeout)]
        if ike:
            args += ["--ike", ike]
        if child:
            args += ["--child", child]
        if force:
            args += ["--force"]
        return self.swanctl(*args, timeout=timeout + 10)

    def rekey(self, ike: str | None = None, child: str | None = None,
              reauth: bool = False) -> subprocess.CompletedProcess:
        args = ["--rekey"]
        if ike:
            args += ["--ike", ike]
        if child:
            args += ["--child", child]
        if reauth:
            args += ["--reauth"]
        return self.swanctl(*args)

    def list_sas(self, ike: str | None = None) -> dict[str, dict]:
        """{ike_sa_name: {...}}: state, local-host, remote-host, nat-local/-remote,
        child-sas {name-N: {state, bytes-in, bytes-out, local-ts [...], ...}}."""
        args = ["--list-sas", "--pretty"] + (["--ike", ike] if ike else [])
        sas: dict[str, dict] = {}
        for header, body in parse_vici_pretty(self.swanctl(*args).stdout):
            if header == "list-sa event":
                sas.update(body)
        return sas

    def list_conns(self) -> dict[str, dict]:
        conns: dict[str, dict] = {}
        for header, body in parse_vici_pretty(self.swanctl("--list-conns", "--pretty").stdout):
            if header == "list-conn event":
                conns.update(body)
        return conns

    def stop(self) -> None:
        if self.process:
            self.process.stop()


def child_sas(ike_sa: dict) -> list[dict]:
    return list(ike_sa.get("child-sas", {}).values())


def established(charon: Charon, ike: str, timeout: float = 30) -> dict:
    """Waits for IKE_SA `ike` to be ESTABLISHED with an INSTALLED CHILD_SA; returns it."""
    def get():
        sa = charon.list_sas().get(ike)
        if sa and sa.get("state") == "ESTABLISHED" and any(
                c.get("state") == "INSTALLED" for c in child_sas(sa)):
            return sa
        return None
    return wait_until(get, timeout, f"{charon.name}: IKE_SA {ike} ESTABLISHED+INSTALLED")


# --------------------------------------------------------------------------- udp_probe


class LineProbe:
    """A test helper binary in a namespace, driven by one command line per answer line."""

    def __init__(self, lab: "Lab", ns: Namespace, argv: Sequence[str], name: str):
        self.name = name
        self.process = lab.spawn(ns, list(argv), name=name, stdin_pipe=True, stdout_pipe=True)
        self._pending = b""

    def _read_line(self, timeout: float) -> str:
        # Raw reads with our own buffer: a buffered readline() could swallow a second
        # line that select() would then never report.
        fd = self.process.popen.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            if not ready:
                raise Failure(f"{self.name}: no answer within {timeout:g}s")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise Failure(f"{self.name} exited ({self.process.popen.poll()}): "
                              f"{tail(self.process.log_text())}")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode(errors="replace")

    def command(self, line: str, timeout: float = 10) -> str:
        self.process.popen.stdin.write(line + "\n")
        self.process.popen.stdin.flush()
        return self._read_line(timeout)


class UdpProbe(LineProbe):
    """tests/netns/udp_probe (the project's UdpSocket) in a namespace, driven by lines."""

    def __init__(self, lab: Lab, ns: Namespace, *bind: str, name: str | None = None):
        super().__init__(lab, ns, [str(find_binary("udp_probe")), *bind], name or f"udp_probe-{ns.role}")
        self.bound = []
        for _ in bind:
            line = self._read_line(10)
            check(line.startswith("ready "), f"{self.name}: {line}")
            self.bound.append(line.split(" ", 1)[1])

    def send(self, src: str, dst: str, text: str) -> str:
        """UdpSocket::send(). Returns "sent nonlocal=N" or "error ..."."""
        return self.command(f"send {src} {dst} {text}")

    def send_nonlocal(self, src: str, dst: str, text: str) -> str:
        """UdpSocket::send_from_nonlocal(): any source address and port."""
        return self.command(f"send-nonlocal {src} {dst} {text}")

    def send_hex_nonlocal(self, src: str, dst: str, data: bytes) -> str:
        """send_nonlocal() of any octets (a captured message replayed)."""
        return self.command(f"send-hex-nonlocal {src} {dst} {data.hex()}")

    def recv(self, timeout: float = 2) -> dict | None:
        """{"local", "remote", "data"} of the next datagram, None on timeout."""
        line = self.command(f"recv {int(timeout * 1000)}", timeout + 5)
        if line == "timeout":
            return None
        check(line.startswith("recv "), f"{self.name}: {line}")
        return dict(kv.split("=", 1) for kv in line[5:].split(" "))


# --------------------------------------------------------------------------- test runner


def netns_param(choices: Iterable[str]) -> str:
    """The parameter of a test file with a "netns-params:" line: its one argument, one of
    choices, which must be exactly the parameters that line declares (so that ctest runs
    every one). Run by hand: python3 tests/netns/test_<name>.py PARAM."""
    choices = list(choices)
    script = Path(sys.argv[0])
    m = re.search(r"^netns-params:(.*)$", script.read_text(), re.M)
    declared = m.group(1).split() if m else []
    if sorted(declared) != sorted(choices):
        print(f"{script.name}: its netns-params line {declared} does not list its parameters {choices}",
              file=sys.stderr, flush=True)
        sys.exit(EXIT_FAIL)
    if len(sys.argv) != 2 or sys.argv[1] not in choices:
        print(f"usage: {script.name} {{{','.join(choices)}}}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FAIL)
    return sys.argv[1]



def run_test(fn: Callable[[Lab], None], title: str, *, timeout: int = 240,
             requires: Callable[[], object] | None = None) -> None:
    """Runs fn(lab) and exits 0 / 1 / 77. The alarm fires before ctest's TIMEOUT so the
    Lab can still clean up (ctest kills with SIGKILL)."""
    start = time.monotonic()

    def on_alarm(_s, _f):
        raise Failure(f"test exceeded its own {timeout}s limit")
    code = EXIT_FAIL
    lab = None
    try:
        if requires is not None:
            requires()
        else:
            require_netns()
        _install_handlers()
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(timeout)
        log(f"{title}: start")
        with Lab() as lab:
            try:
                fn(lab)
            except BaseException:
                lab.dump_logs()
                raise
        code = EXIT_PASS
        log(f"PASS: {title} ({time.monotonic() - start:.1f}s)")
    except Skip as e:
        code = EXIT_SKIP
        print(f"SKIP: {title}: {e}", flush=True)
    except Failure as e:
        print(f"FAIL: {title}: {e}", flush=True)
    except SystemExit as e:
        print(f"FAIL: {title}: interrupted ({e.code})", flush=True)
    except Exception:
        traceback.print_exc()
        print(f"FAIL: {title}: unexpected exception", flush=True)
    finally:
        signal.alarm(0)
        if lab is not None:
            lab.close()
    sys.exit(code)
