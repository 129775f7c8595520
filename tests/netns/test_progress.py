#!/usr/bin/env python3
"""Bulk mobikectl commands show a live progress line on a terminal, and nothing else
changes when there is none:

  switch: client 10.1.0.2 -- nat (MASQUERADE) -- gateway 198.51.100.10, .20; mobike-bench
    holds 12 IKE SAs (switch support) towards .10. On the gateway:
    1. `mobikectl switch --all --to .20 --rate 6` with stderr on a pseudo-terminal: stderr
       carries progress lines redrawn with '\\r' whose counts rise to done == total == 12,
       with a rate (SAs/s), and ends with a newline; stdout is the usual result;
    2. the same back to .10 with stderr and stdout on pipes: stderr is empty and stdout
       has exactly the usual shape (one line per SA, then the totals);
    3. with --json on the terminal: no progress at all, stdout is the JSON result;
    4. a raw client asks for progress, reads two progress lines and hangs up mid-switch:
       mobiked answers `stats` meanwhile, the switch still completes, and the next one is
       accepted; a raw client that does not ask gets exactly one line, as before.
  drain: two cluster nodes on etcd (tests/netns/cluster_lab.py), 40 mobike-bench SAs on
    gw1; `mobikectl cluster drain` on gw1 under a pseudo-terminal: progress lines up to
    done == total == 40, 0 failed, then the usual result on stdout.
netns-params: switch drain
"""

import json
import os
import re
import select
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import Lab, check, find_binary, log, netns_param, require_commands, require_netns, run_test, wait_until  # noqa: E402
from topology import setup_nat  # noqa: E402

PARAMS = ("switch", "drain")
CLIENT, NAT_IN, NAT_OUT = "10.1.0.2", "10.1.0.1", "198.51.100.2"
GW_A, GW_B, GW_INNER = "198.51.100.10", "198.51.100.20", "203.0.113.1"
PSK = "mobike-bench-psk-0123456789abcdef"
COUNT = 12
RATE = 6.0  # 12 SAs in about 2 s

LINE = re.compile(r"^(?P<label>[a-z ]+): (?P<done>\d+)/(?P<total>\d+) done, (?P<failed>\d+) failed, "
                  r"(?P<remaining>\d+) remaining(?: \((?P<in_flight>\d+) in flight\))?(?:, (?P<rate>[\d.]+) SAs/s)?$")
SWITCH_ROW = re.compile(r"^#\d+ (switched|refused|failed|not started)(: .*)?$")
SWITCH_TOTALS = re.compile(r"^\d+ switched, \d+ refused, \d+ failed, \d+ not started, in [\d.]+ s$")
MOVE_ROW = re.compile(r"^#\d+ -> \S* (moved|returned|failed|not_asked)(: .*)?$")
MOVE_TOTALS = re.compile(r"^\d+ moved, \d+ returned, \d+ failed, \d+ not asked \(no switch support\), in [\d.]+ s$")


def requires() -> None:
    require_netns()
    require_commands("iptables")
    for b in ("mobiked", "mobikectl", "mobike-bench"):
        find_binary(b)


def run_on_tty(argv: list[str], timeout: float = 60) -> tuple[int, str, str]:
    """Runs argv with stderr on a pseudo-terminal (stdout on a pipe): (rc, stdout, what the
    terminal got, with the tty's "\\r\\n" for "\\n" turned back)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    tty, out = b"", b""
    deadline = time.monotonic() + timeout
    fds = [master, proc.stdout.fileno()]
    while fds and time.monotonic() < deadline:
        ready, _, _ = select.select(fds, [], [], 0.5)
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                chunk = b""
            if not chunk:
                fds.remove(fd)
            elif fd == master:
                tty += chunk
            else:
                out += chunk
    os.close(master)
    rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    return rc, out.decode(), tty.decode().replace("\r\n", "\n")


def progress_lines(tty: str, label: str) -> list[dict]:
    """The progress lines drawn on the terminal, in order (trailing padding dropped)."""
    check("\r" in tty, f"no '\\r' on the terminal: {tty!r}")
    check(tty.endswith("\n"), f"the progress line does not end with a newline: {tty!r}")
    rows = []
    for seg in tty.rstrip("\n").split("\r"):
        seg = seg.rstrip(" ")
        if not seg:
            continue
        m = LINE.match(seg)
        check(m is not None and m["label"] == label, f"not a '{label}' progress line: {seg!r} in {tty!r}")
        rows.append({k: (float(v) if k == "rate" else int(v)) if v is not None and k != "label" else v
                     for k, v in m.groupdict().items()})
    check(rows, f"no progress line on the terminal: {tty!r}")
    return rows


def check_rising(rows: list[dict], total: int, want_rate: bool) -> None:
    check(all(r["total"] == total for r in rows), f"the total is not {total} throughout: {rows}")
    check(all(r["done"] + r["remaining"] == total for r in rows), f"done + remaining != total: {rows}")
    dones = [r["done"] for r in rows]
    check(dones == sorted(dones), f"done went down: {dones}")
    check(rows[-1]["done"] == total and rows[-1]["remaining"] == 0 and rows[-1]["failed"] == 0,
          f"the last progress line is not {total}/{total} done, 0 failed: {rows[-1]}")
    if want_rate:
        rates = [r["rate"] for r in rows if r["rate"] is not None]
        check(any(r > 0 for r in rates), f"no rate above 0 in the progress lines: {rows}")


def check_usual_switch_output(out: str, count: int) -> None:
    lines = out.splitlines()
    check(len(lines) == count + 1, f"stdout is not {count} SA lines and the totals: {out!r}")
    check(all(SWITCH_ROW.match(ln) for ln in lines[:-1]), f"unusual SA lines: {out!r}")
    check(SWITCH_TOTALS.match(lines[-1]) is not None, f"unusual totals line: {lines[-1]!r}")
    check(lines[-1].startswith(f"{count} switched, 0 refused, 0 failed, 0 not started"), f"not all switched: {out}")


class RawClient:
    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(15)
        self.sock.connect(path)
        self.buf = b""

    def send(self, obj: dict) -> None:
        self.sock.sendall((json.dumps(obj) + "\n").encode())

    def line(self) -> dict:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            check(chunk != b"", "mobiked closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def nothing_more(self, wait: float) -> bool:
        self.sock.settimeout(wait)
        try:
            return self.buf == b"" and self.sock.recv(1) == b""
        except socket.timeout:
            return self.buf == b""

    def close(self) -> None:
        self.sock.close()


def run_switch(lab: Lab) -> None:
    cli, nat, gw = lab.namespace("cli"), lab.namespace("nat"), lab.namespace("gw")
    lab.veth(cli, "eth0", nat, "in0")
    lab.veth(nat, "out0", gw, "eth0")
    cli.add_address("eth0", CLIENT + "/24")
    cli.add_route("default", via=NAT_IN)
    nat.add_address("in0", NAT_IN + "/24")
    nat.add_address("out0", NAT_OUT + "/24")
    gw.add_address("eth0", GW_A + "/24")
    gw.add_address("eth0", GW_B + "/24")
    gw.add_address("lo", GW_INNER + "/32")
    setup_nat(nat, "10.1.0.0/24", "out0", "in0")

    d = Mobiked(lab, gw, name="gateway", log_level="info")
    d.start([MConn("bench", local_id="res@mobike.test", remote_id="bench@mobike.test", psk=PSK,
                   remote_addrs=["%any"], local_ts=[GW_INNER + "/32"], remote_ts=["10.0.0.0/8"],
                   dpd_delay="0s", rekey_time="0", child_rekey_time="0")])
    ready = lab.dir / "ready"
    bench = cli.spawn([str(find_binary("mobike-bench")), "handshake", "--target", GW_A, "--local", CLIENT,
                       "--count", str(COUNT), "--concurrency", "16", "--psk", PSK,
                       "--local-id", "bench@mobike.test", "--remote-id", "res@mobike.test",
                       "--ts-pool", "10.0.0.0/8", "--remote-ts", GW_INNER + "/32", "--settle", "0.2",
                       "--hold", "120", "--ready-file", str(ready), "--json"],
                      name="mobike-bench", stdout_pipe=True)
    wait_until(lambda: ready.exists() or not bench.alive(), 60, "mobike-bench's SAs up")
    check(ready.exists(), "mobike-bench did not get its SAs up:\n" + bench.log_text()[-2000:])

    def on(addr: str) -> int:
        return sum(1 for sa in d.list_sas() if sa["local"]["addr"] == addr and sa["state"] == "ESTABLISHED")
    check(on(GW_A) == COUNT, f"the gateway does not hold {COUNT} SAs on {GW_A}: {d.list_sas()}")
    ctl = [str(find_binary("mobikectl")), "--socket", str(d.socket), "--timeout", "10"]

    # 1. On a terminal: the live line, then the usual result.
    t0 = time.monotonic()
    rc, out, tty = run_on_tty(ctl + ["switch", "--all", "--to", GW_B, "--rate", str(RATE)])
    log(f"switch on a terminal (rc {rc}, {time.monotonic() - t0:.1f} s): {tty!r}")
    check(rc == 0, f"switch failed ({rc}): {out}{tty}")
    rows = progress_lines(tty, "switch")
    check(len(rows) >= 3, f"fewer than 3 progress lines in a switch of about {COUNT / RATE:.0f} s: {rows}")
    check_rising(rows, COUNT, want_rate=True)
    check_usual_switch_output(out, COUNT)
    check(on(GW_B) == COUNT, f"not every SA is on {GW_B}")

    # 2. No terminal: exactly the usual output, nothing on stderr.
    r = subprocess.run(ctl + ["switch", "--all", "--to", GW_A, "--rate", str(RATE)], capture_output=True,
                       text=True, timeout=60)
    log(f"switch without a terminal: rc {r.returncode}, stderr {r.stderr!r}, stdout {len(r.stdout)} bytes")
    check(r.returncode == 0 and r.stderr == "", f"without a terminal: rc {r.returncode}, stderr {r.stderr!r}")
    check_usual_switch_output(r.stdout, COUNT)

    # 3. --json on a terminal: machine-readable, no progress.
    rc, out, tty = run_on_tty(ctl + ["switch", "--all", "--to", GW_B, "--rate", str(RATE), "--json"])
    check(rc == 0 and tty == "", f"--json on a terminal: rc {rc}, terminal got {tty!r}")
    answer = json.loads(out)
    check(answer["switched"] == COUNT, f"--json result: {answer}")

    # 4. A client that asked for progress hangs up mid-switch.
    c = RawClient(str(d.socket))
    c.send({"command": "switch", "all": True, "to": GW_A, "rate": RATE / 2, "progress": True})
    first, second = c.line(), c.line()
    log(f"raw client: {first} {second}")
    for p in (first, second):
        check(set(p) == {"progress"} and set(p["progress"]) == {"done", "failed", "remaining", "in_flight", "seconds"},
              f"not a progress line: {p}")
        check(p["progress"]["done"] + p["progress"]["remaining"] == COUNT, f"progress does not add up: {p}")
    c.close()
    s = d.ctl("stats", "--json")  # mobiked still answers, mid-switch
    check(s.returncode == 0, "mobiked does not answer after the client hung up")
    wait_until(lambda: on(GW_A) == COUNT, 30, f"the abandoned switch completes: all {COUNT} SAs on {GW_A}")
    # The job has ended (no "already running"); without "progress", one line, as before.
    def accepted():
        c = RawClient(str(d.socket))
        c.send({"command": "switch", "all": True, "to": GW_B})
        answer = c.line()
        if not answer.get("ok") and "already running" in answer.get("error", ""):
            return None
        return c, answer
    c, answer = wait_until(accepted, 10, "a new switch accepted")
    check(answer.get("ok") is True and answer["result"]["switched"] == COUNT, f"switch without progress: {answer}")
    check(c.nothing_more(0.5), "a client that did not ask for progress got more than its one line")
    c.close()
    check(d.proc.alive(), "mobiked died")
    bench.stop()


def run_drain(lab: Lab) -> None:
    from cluster_lab import ClusterLab, requires as cluster_requires
    cluster_requires()
    c = ClusterLab(lab, nodes=("gw1", "gw2"))
    c.start_nodes(("gw1", "gw2"))
    total = 40
    proc, _ = c.bench(total, hold=30)
    check(len(c.sas_on("gw1")) == total, f"gw1 has {len(c.sas_on('gw1'))} SAs, not {total}")
    ctl = [str(find_binary("mobikectl")), "--socket", str(c.nodes["gw1"].socket), "--timeout", "30"]
    rc, out, tty = run_on_tty(ctl + ["cluster", "drain"])
    log(f"cluster drain on a terminal (rc {rc}): {tty!r}")
    check(rc == 0, f"drain failed ({rc}): {out}{tty}")
    rows = progress_lines(tty, "cluster drain")
    check_rising(rows, total, want_rate=False)
    lines = out.splitlines()
    check(len(lines) == total + 1 and all(MOVE_ROW.match(ln) for ln in lines[:-1]) and MOVE_TOTALS.match(lines[-1]),
          f"stdout is not the usual drain result: {out!r}")
    check(lines[-1].startswith(f"{total} moved, 0 returned, 0 failed"), f"not all moved: {lines[-1]}")
    wait_until(lambda: len(c.sas_on("gw2")) == total, 10, f"gw2 holds the {total} SAs")
    proc.stop()


def test(lab: Lab) -> None:
    {"switch": run_switch, "drain": run_drain}[netns_param(PARAMS)](lab)


if __name__ == "__main__":
    run_test(test, f"progress lines: {netns_param(PARAMS)}", requires=requires, timeout=200)
