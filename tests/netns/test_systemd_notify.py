#!/usr/bin/env python3
"""mobiked under a service manager, with the manager's sockets played by the test:

- lifecycle: NOTIFY_SOCKET names a Unix datagram socket the test bound. READY=1 (with
  STATUS= naming the connections) arrives once the control socket answers; SIGHUP with a
  new connection gives RELOADING=1 (with MONOTONIC_USEC= on CLOCK_MONOTONIC) then READY=1,
  and mobikectl list-conns shows the connection; SIGHUP with a broken file gives
  RELOADING=1 then READY=1 again (the manager must not be left waiting) with a STATUS=
  saying the reload failed, the old connections kept; `mobikectl reload` notifies the
  same way; SIGTERM gives STOPPING=1 and the daemon exits 0. No WATCHDOG=1 without
  WATCHDOG_USEC.
- watchdog: with WATCHDOG_USEC=200000 the daemon pings WATCHDOG=1 about every 100 ms
  from its event loop; with WATCHDOG_PID naming another process it does not.
- journal: the gateway's stderr is made to look like journald's stream (JOURNAL_STREAM =
  its log file's device:inode) and, in a mount namespace of its own, journald's socket
  /run/systemd/journal/socket is a socket the test bound. The entries arrive in the
  journal's native protocol: every line with MESSAGE, PRIORITY and SYSLOG_IDENTIFIER, the
  lines about the IKE SA with MOBIKED_IKE_SA, MOBIKED_CONNECTION and MOBIKED_PEER equal to
  what mobikectl list-sas says of it. A daemon whose JOURNAL_STREAM does not match its
  stderr (inherited from a unit, output redirected) keeps writing text to stderr.

- hardened: what of the unit's hardening can be had without a running systemd. Gateway
  and client (userspace data plane: a TUN device each) run with the unit's
  CapabilityBoundingSet= (read from packaging/systemd/mobiked.service) and
  NoNewPrivileges= through setpriv, on a file system read-only but for their own
  directory (ProtectSystem=strict with the runtime directory writable, done with a
  read-only bind mount in a mount namespace). READY=1 comes, a ping passes through
  the tunnel, and neither logs a warning or an error. Not emulated here:
  RestrictAddressFamilies=, DeviceAllow=, the Protect*= of the kernel, which only
  systemd itself applies.

netns-params: lifecycle watchdog journal hardened
"""

import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Failure, Lab, check, find_binary, log, netns_param, require_commands,  # noqa: E402
                   require_netns, run_test, tail, wait_until)
from topology import nat_topology  # noqa: E402


class Listener:
    """A Unix datagram socket the daemon sends to (the manager's notify socket, or
    journald's)."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        # journald's socket is world-writable; the daemon runs as root here anyway.
        os.chmod(self.path, 0o666)
        self.seen: list[bytes] = []

    def receive(self, timeout: float) -> bytes | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return None
        self.seen.append(data)
        return data

    def drain(self, seconds: float) -> list[bytes]:
        out, end = [], time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            d = self.receive(left)
            if d is not None:
                out.append(d)
        return out


def fields(message: bytes) -> dict[str, str]:
    """An sd_notify datagram: newline-separated VAR=VALUE."""
    out = {}
    for line in message.decode().split("\n"):
        if line:
            k, _, v = line.partition("=")
            out[k] = v
    return out


class Notifications(Listener):
    def next_with(self, key: str, timeout: float, what: str, skip_watchdog: bool = True) -> dict[str, str]:
        """The next notification carrying `key`; fails on any other notification first
        (order matters: RELOADING before READY), except WATCHDOG=1 pings."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            d = self.receive(left)
            if d is None:
                break
            f = fields(d)
            if skip_watchdog and list(f) == ["WATCHDOG"]:
                continue
            check(key in f, f"waiting for {what}: got {d!r} instead")
            return f
        raise Failure(f"timed out after {timeout:g}s waiting for {what}")


def spawn_mobiked(m: Mobiked, conns: list[MConn], env: dict[str, str]):
    """Starts the daemon the way a unit's ExecStart does (--foreground, the extra
    environment), without waiting for the control socket: the test wants to see
    READY=1 arrive by itself."""
    m.write_config(conns)
    m.proc = m.ns.spawn([str(find_binary("mobiked")), "--config", str(m.config_path), "--foreground"],
                        name=m.name, env={**os.environ, **env})
    return m.proc


def conn_names(m: Mobiked) -> list[str]:
    return [c["name"] for c in json.loads(m.ctl("list-conns", "--json").stdout)]


def conn(name: str) -> MConn:
    return MConn(name, local_id="gw@mobike.test", remote_id=None, remote_addrs=["%any"])


def lifecycle(lab: Lab) -> None:
    ns = lab.namespace("gw")
    notify = Notifications(lab.dir / "notify")
    m = Mobiked(lab, ns, "gateway")
    proc = spawn_mobiked(m, [conn("first")], {"NOTIFY_SOCKET": notify.path})

    ready = notify.next_with("READY", 15, "READY=1 at start-up")
    # READY=1 promises a working daemon: the control socket must answer at once.
    check(conn_names(m) == ["first"], "the control socket did not answer right after READY=1")
    check("1 connection" in ready.get("STATUS", ""), f"STATUS= does not give the connections: {ready}")
    log(f"READY=1, STATUS={ready.get('STATUS')!r}; control socket answers")

    m.write_config([conn("first"), conn("second")])
    before = time.clock_gettime(time.CLOCK_MONOTONIC)
    os.kill(proc.pid, signal.SIGHUP)
    reloading = notify.next_with("RELOADING", 10, "RELOADING=1 after SIGHUP")
    after = time.clock_gettime(time.CLOCK_MONOTONIC)
    check(reloading["RELOADING"] == "1", f"bad RELOADING: {reloading}")
    usec = int(reloading.get("MONOTONIC_USEC", "-1"))
    check(before * 1e6 - 1000 <= usec <= after * 1e6 + 1000,
          f"MONOTONIC_USEC={usec} is not CLOCK_MONOTONIC at the reload ({before:.6f}..{after:.6f} s)")
    ready = notify.next_with("READY", 10, "READY=1 after the reload")
    check("2 connection" in ready.get("STATUS", ""), f"STATUS= after the reload: {ready}")
    check(conn_names(m) == ["first", "second"], f"the reload did not add 'second': {conn_names(m)}")
    log(f"SIGHUP: RELOADING=1 (MONOTONIC_USEC ok), READY=1, STATUS={ready.get('STATUS')!r}; 'second' listed")

    # A broken file: the reload fails, yet the manager hears READY=1 again (else it would
    # wait in "reloading" until its timeout) and STATUS= says what happened.
    good = m.config_path.read_text()
    m.config_path.write_text(good + '\n[[connection]]\nname = "broken"\nike_proposals = "aes129"\n')
    os.kill(proc.pid, signal.SIGHUP)
    notify.next_with("RELOADING", 10, "RELOADING=1 after SIGHUP with a broken file")
    ready = notify.next_with("READY", 10, "READY=1 after the failed reload")
    check("fail" in ready.get("STATUS", ""), f"STATUS= does not say the reload failed: {ready}")
    check(conn_names(m) == ["first", "second"], "the failed reload changed the connections")
    log(f"broken file: RELOADING=1, READY=1, STATUS={ready.get('STATUS')!r}; connections kept")

    # A reload through the control socket is a reload too.
    m.config_path.write_text(good)
    m.ctl("reload")
    notify.next_with("RELOADING", 10, "RELOADING=1 after mobikectl reload")
    notify.next_with("READY", 10, "READY=1 after mobikectl reload")
    log("mobikectl reload: RELOADING=1, READY=1")

    os.kill(proc.pid, signal.SIGTERM)
    stopping = notify.next_with("STOPPING", 10, "STOPPING=1 after SIGTERM")
    log(f"SIGTERM: STOPPING=1, STATUS={stopping.get('STATUS')!r}")
    rc = proc.wait(10)
    check(rc == 0, f"mobiked exited {rc} after SIGTERM")
    notify.drain(0.2)
    check(not any(b"WATCHDOG" in d for d in notify.seen), "WATCHDOG=1 sent without WATCHDOG_USEC")


def watchdog(lab: Lab) -> None:
    ns = lab.namespace("gw")
    notify = Notifications(lab.dir / "notify")
    m = Mobiked(lab, ns, "gateway")
    proc = spawn_mobiked(m, [conn("first")], {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"})
    notify.next_with("READY", 15, "READY=1 at start-up")
    pings = [d for d in notify.drain(2.0) if fields(d) == {"WATCHDOG": "1"}]
    # Every 100 ms: about 20 in 2 s. At least 8 leaves room for a busy machine, and is
    # still far more than a daemon that pings only at start (or at the full 200 ms and
    # late) would send.
    check(len(pings) >= 8, f"only {len(pings)} WATCHDOG=1 in 2 s with WATCHDOG_USEC=200000")
    log(f"WATCHDOG_USEC=200000: {len(pings)} WATCHDOG=1 in 2 s")
    os.kill(proc.pid, signal.SIGTERM)
    notify.next_with("STOPPING", 10, "STOPPING=1 after SIGTERM")
    check(proc.wait(10) == 0, "mobiked did not exit 0")

    # WATCHDOG_PID names another process: the watchdog is not this daemon's to ping.
    other = Notifications(lab.dir / "notify2")
    m2 = Mobiked(lab, ns, "gateway2")
    proc2 = spawn_mobiked(m2, [conn("first")], {"NOTIFY_SOCKET": other.path, "WATCHDOG_USEC": "200000",
                                                "WATCHDOG_PID": str(os.getpid())})
    other.next_with("READY", 15, "READY=1 at start-up", skip_watchdog=False)
    stray = [d for d in other.drain(1.0) if b"WATCHDOG" in d]
    check(not stray, f"WATCHDOG=1 sent although WATCHDOG_PID is another process: {stray}")
    log("WATCHDOG_PID of another process: no pings")
    proc2.stop()


class Journald(Listener):
    """journald's socket: read continuously in a thread, as journald does. A daemon
    logging at debug level fills a datagram socket's queue quickly, and a full queue
    would block it in sendmsg while the test waits for its SA."""

    def __init__(self, path):
        super().__init__(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.lock = threading.Lock()
        self.entries: list[bytes] = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                d = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.entries.append(d)

    def snapshot(self) -> list[bytes]:
        with self.lock:
            return list(self.entries)


def parse_journal(datagram: bytes) -> dict[str, str]:
    """journald's native protocol: FIELD=value lines, or for values that may hold
    newlines FIELD, a newline, a 64-bit little-endian length, the value and a newline."""
    out, i = {}, 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            k, _, v = line.partition(b"=")
            out[k.decode()] = v.decode()
            i = nl + 1
        else:
            (n,) = struct.unpack_from("<Q", datagram, nl + 1)
            start = nl + 9
            out[line.decode()] = datagram[start:start + n].decode()
            check(datagram[start + n:start + n + 1] == b"\n", f"bad binary field in {datagram!r}")
            i = start + n + 1
    return out


def journal(lab: Lab) -> None:
    require_commands("unshare", "mount")
    t = nat_topology(lab)
    jdir = lab.dir / "journal"
    jdir.mkdir()
    journald = Journald(jdir / "socket")

    gw_conn = MConn("clients", local_id="gw@mobike.test", remote_id=None, remote_addrs=["%any"],
                    local_ts=[t.RES_INNER + "/32"])
    gw = Mobiked(lab, t.res, "gateway", log_level="debug")
    gw.write_config([gw_conn])
    log_path = lab.dir / "gateway-journal.log"
    log_path.touch()
    st = os.stat(log_path)
    # The daemon's stderr is this file (sh's 2> below, inherited through exec): its
    # device and inode are what systemd would put into JOURNAL_STREAM.
    script = ("mount -t tmpfs none /run && mkdir -p /run/systemd/journal && "
              f"mount --bind {jdir} /run/systemd/journal && "
              f"exec {find_binary('mobiked')} --config {gw.config_path} --foreground 2>>{log_path}")
    env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    gw.proc = t.res.spawn(["unshare", "-m", "sh", "-c", script], name="gateway", env=env)
    wait_until(lambda: gw.socket.exists() and gw.ctl("stats", check=False).returncode == 0, 15,
               "gateway control socket")

    cl_conn = MConn("office", local_id="client@mobike.test", remote_id="gw@mobike.test",
                    remote_addrs=[t.RES_ADDR], local_ts=[t.INI_INNER + "/32"], remote_ts=[t.RES_INNER + "/32"])
    # The client's JOURNAL_STREAM is inherited but names another file: text on stderr.
    client_env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    client = Mobiked(lab, t.ini, "client")
    spawn_mobiked(client, [cl_conn], client_env)
    wait_until(lambda: client.socket.exists() and client.ctl("stats", check=False).returncode == 0, 15,
               "client control socket")
    client.ctl("initiate", "office")
    client.established("office")
    sa = gw.established("clients")
    remote = sa["remote"]
    addr, port = (remote["addr"], remote["port"]) if isinstance(remote, dict) else remote
    peer = f"{addr}:{port}" if ":" not in addr else f"[{addr}]:{port}"
    log(f"gateway SA #{sa['id']} of 'clients' with {peer}")

    time.sleep(0.5)
    entries = [parse_journal(d) for d in journald.snapshot()]
    check(entries, "no journal entries arrived at /run/systemd/journal/socket")
    for e in entries:
        check({"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER"} <= set(e), f"entry without the basic fields: {e}")
        check(e["SYSLOG_IDENTIFIER"] == "mobiked", f"identifier: {e}")
        check(e["PRIORITY"] in "01234567" and len(e["PRIORITY"]) == 1, f"priority: {e}")
    plain = [e for e in entries if "MOBIKED_IKE_SA" not in e]
    about_sa = [e for e in entries if e.get("MOBIKED_IKE_SA") == str(sa["id"])]
    check(any("listening on" in e["MESSAGE"] for e in plain), "the start-up lines are not in the journal")
    check(about_sa, f"no entry with MOBIKED_IKE_SA={sa['id']}; entries: {entries[:20]}")
    for e in about_sa:
        check(e.get("MOBIKED_CONNECTION") == "clients", f"MOBIKED_CONNECTION: {e}")
        # The engine's lines ("[clients|1] ...") and the daemon's event lines ("clients[1] IKE
        # SA established ...") read as they do on stderr.
        check(e["MESSAGE"].startswith((f"[clients|{sa['id']}] ", f"clients[{sa['id']}] ")),
              f"MESSAGE of an SA line: {e}")
    for e in entries:
        # The entry is written by mobiked's wrapper around sd_journal_sendv: a source
        # location would always name that wrapper, which says nothing.
        check("CODE_FILE" not in e, f"entry with the wrapper's source location: {e}")
    # The peer field is the SA's address at the time of the line; once established it is
    # the NAT's mapping, which list-sas shows.
    check(any("IKE SA established" in e["MESSAGE"] for e in about_sa), "the event line has no SA fields")
    check(any(e["MESSAGE"].startswith("[clients|") for e in about_sa), "no engine line with SA fields")
    check(any(e.get("MOBIKED_PEER") == peer for e in about_sa),
          f"no entry with MOBIKED_PEER={peer}: {[e.get('MOBIKED_PEER') for e in about_sa]}")
    log(f"journal: {len(entries)} entries, {len(about_sa)} about SA #{sa['id']}, e.g. "
        f"{json.dumps({k: v for k, v in about_sa[-1].items()})}")

    # In journal mode stderr stays quiet (the journal has the lines); the client, whose
    # inherited JOURNAL_STREAM names another file, writes its usual text.
    gw_text = log_path.read_text()
    check("listening on" not in gw_text, f"the gateway logged to stderr as well:\n{tail(gw_text)}")
    check("listening on" in client.log_text(), "the client's stderr lost its log lines")
    log("stderr: gateway quiet, client (mismatched JOURNAL_STREAM) writes text")
    gw.proc.stop()
    client.stop()
    journald.stop = True


UNIT = Path(__file__).resolve().parents[2] / "packaging" / "systemd" / "mobiked.service"


def unit_setting(key: str) -> str:
    m = re.search(rf"^{key}=(.*)$", UNIT.read_text(), re.M)
    check(m is not None, f"{UNIT} has no {key}=")
    return m.group(1).strip()


def hardened(lab: Lab) -> None:
    require_commands("unshare", "mount", "setpriv", "ping")
    caps = unit_setting("CapabilityBoundingSet").split()
    check(unit_setting("NoNewPrivileges") == "yes" and unit_setting("ProtectSystem") == "strict",
          "the unit no longer has NoNewPrivileges=yes and ProtectSystem=strict: update this test")
    bounding = "-all," + ",".join("+" + c.removeprefix("CAP_").lower() for c in caps)
    t = nat_topology(lab)

    def start(m: Mobiked, conns: list[MConn]) -> Notifications:
        m.write_config(conns)
        notify = Notifications(m.dir / "notify")
        # As root under CapabilityBoundingSet=, the daemon's permitted and effective sets
        # after exec are that bounding set: setpriv sets it, then execs mobiked.
        script = (f"mount --make-rprivate / && mount --bind {m.dir} {m.dir} && mount -o remount,bind,ro / && "
                  f"exec setpriv --bounding-set={bounding} --inh-caps=-all --no-new-privs "
                  f"{find_binary('mobiked')} --config {m.config_path} --foreground")
        m.proc = m.ns.spawn(["unshare", "-m", "sh", "-c", script], name=m.name,
                            env={**os.environ, "NOTIFY_SOCKET": notify.path})
        notify.next_with("READY", 15, f"{m.name}: READY=1 under the unit's restrictions")
        return notify

    gw = Mobiked(lab, t.res, "gateway", dataplane="userspace")
    start(gw, [MConn("clients", local_id="gw@mobike.test", remote_id=None, remote_addrs=["%any"],
                     local_ts=[t.RES_INNER + "/32"], remote_ts=[t.INI_INNER + "/32"])])
    cl = Mobiked(lab, t.ini, "client", dataplane="userspace")
    start(cl, [MConn("office", local_id="client@mobike.test", remote_id="gw@mobike.test",
                     remote_addrs=[t.RES_ADDR], local_ts=[t.INI_INNER + "/32"], remote_ts=[t.RES_INNER + "/32"])])
    status = t.res.run(["cat", f"/proc/{gw.proc.pid}/status"]).stdout
    eff = int(re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    check(eff != 0 and bin(eff).count("1") == len(caps),
          f"the gateway runs with capabilities {eff:#x}, not the unit's {len(caps)}: {status}")
    check(re.search(r"^NoNewPrivs:\s*1", status, re.M) is not None, "no_new_privs is not set")
    cl.ctl("initiate", "office")
    cl.established("office")
    gw.established("clients")
    r = t.ini.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", "-I", t.INI_INNER, t.RES_INNER],
                  check=False, timeout=60)
    check(r.returncode == 0, f"ping through the tunnel failed under the unit's restrictions:\n{r.stdout}{r.stderr}")
    for m in (gw, cl):
        bad = [line for line in m.log_text().splitlines() if re.search(r" (warning|error|critical) ", line)]
        check(not bad, f"{m.name} complained under the unit's restrictions:\n" + "\n".join(bad))
    log(f"capabilities {' '.join(caps)} (CapEff {eff:#x}), no_new_privs, read-only /: "
        f"READY=1, SA established, ping through the TUN devices, no warnings")
    gw.stop()
    cl.stop()


def test(lab: Lab) -> None:
    {"lifecycle": lifecycle, "watchdog": watchdog, "journal": journal, "hardened": hardened}[PARAM](lab)


PARAM = netns_param(["lifecycle", "watchdog", "journal", "hardened"])
run_test(test, f"sd_notify and journald ({PARAM})", requires=lambda: (require_netns(), require_commands("ip")))
