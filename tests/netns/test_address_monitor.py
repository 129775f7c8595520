#!/usr/bin/env python3
"""The rtnetlink address monitor on a real kernel (tests/netns/addrmon_probe).

host's eth0 is a veth to peer. The probe prints its initial snapshot, then every
debounced change of the usable address set; each step below changes the host and checks
the next change's before/after sets:
  add and delete an IPv4 address; an IPv6 address that is tentative until DAD is done;
  eth0 administratively down and up; carrier lost and back (peer's end down and up);
  two addresses added in one burst: one coalesced change, none in between;
  notifications lost (tiny socket queue, stalled reader): the monitor re-dumps and still
  reports the right set.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from netns import Failure, Lab, check, find_binary, log, run_test, tail  # noqa: E402

QUIET_MS = 250
MAX_MS = 1000


class AddrmonProbe:
    def __init__(self, lab: Lab, ns, *extra: str):
        binary = str(find_binary("addrmon_probe"))
        self.process = lab.spawn(ns, [binary, "--quiet-ms", str(QUIET_MS), "--max-ms", str(MAX_MS), *extra],
                                 name="addrmon_probe", stdout_pipe=True)
        self._pending = b""
        self.events: list[dict] = []  # every "event" line so far

    def line(self, timeout: float) -> dict | None:
        """The next JSON line, or None when none came within timeout."""
        # Raw reads with our own buffer: a buffered readline() could swallow a line that
        # select() would then never report.
        fd = self.process.popen.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise Failure(f"addrmon_probe exited ({self.process.popen.poll()}): "
                              f"{tail(self.process.log_text())}")
            self._pending += chunk
        raw, self._pending = self._pending.split(b"\n", 1)
        msg = json.loads(raw)
        if msg["type"] == "error":
            raise Failure(f"addrmon_probe: {msg['message']}")
        if msg["type"] == "event":
            self.events.append(msg)
        return msg

    def snapshot(self) -> dict:
        msg = self.line(10)
        check(msg is not None and msg["type"] == "snapshot", f"expected the snapshot first, got {msg}")
        return msg

    def change(self, timeout: float = 5) -> tuple[set, set, dict]:
        """The next change of the usable set: (before, after, the change). Changes of
        routes only (same set before and after) are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.line(max(deadline - time.monotonic(), 0))
            if msg is None:
                raise Failure(f"no address set change within {timeout:g}s; events since: "
                              f"{[e['text'] for e in self.events[-10:]]}")
            if msg["type"] != "change":
                continue
            before, after = usable(msg["before"]), usable(msg["after"])
            if before == after:
                # The debouncer must not report a burst that changed nothing at all.
                check(msg["routes_changed"], f"change without a change: {msg}")
                continue
            return before, after, msg

    def no_change(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            msg = self.line(left)
            if msg is None:
                return
            if msg["type"] == "change" and usable(msg["before"]) != usable(msg["after"]):
                raise Failure(f"unexpected change: {msg}")


def usable(entries: list[dict]) -> set:
    for e in entries:
        check(e["status"] == "usable", f"unusable address in a usable set: {e}")
    return {f"{e['addr']}/{e['prefix']}%{e['ifname']}" for e in entries}


def expect(step: str, got: tuple[set, set, dict], before: set, after: set) -> dict:
    b, a, msg = got
    check(b == before and a == after,
          f"{step}: expected {sorted(before)} -> {sorted(after)}, got {sorted(b)} -> {sorted(a)}")
    log(f"{step}: {sorted(b)} -> {sorted(a)} ({msg['events']} events)")
    return msg


def test(lab: Lab) -> None:
    host = lab.namespace("host")
    peer = lab.namespace("peer")
    lab.veth(host, "eth0", peer, "eth0")
    host.add_address("eth0", "10.9.0.1/24")
    peer.add_address("eth0", "10.9.0.254/24")
    A1, A2, A3, A4 = (f"10.9.0.{i}/24%eth0" for i in (1, 2, 3, 4))
    V6 = "2001:db8:9::1/64%eth0"

    probe = AddrmonProbe(lab, host)
    snap = probe.snapshot()
    check(usable(snap["usable"]) == {A1}, f"initial usable set: {snap['usable']}")
    visible = {e["addr"]: e["status"] for e in snap["visible"]}
    check(visible.get("127.0.0.1") == "loopback", f"127.0.0.1 not visible as loopback: {visible}")
    check(visible.get("10.9.0.1") == "usable", f"10.9.0.1 not visible as usable: {visible}")
    links = {l["name"]: l["up"] for l in snap["links"]}
    check(links.get("lo") is True and links.get("eth0") is True, f"links: {snap['links']}")

    host.add_address("eth0", "10.9.0.2/24")
    expect("add 10.9.0.2", probe.change(), {A1}, {A1, A2})
    host.del_address("eth0", "10.9.0.2/24")
    expect("delete 10.9.0.2", probe.change(), {A1, A2}, {A1})

    # Without nodad: usable only once duplicate address detection is done (about 1 s).
    seen = len(probe.events)
    host.ip("addr", "add", "2001:db8:9::1/64", "dev", "eth0")
    expect("add 2001:db8:9::1 (DAD)", probe.change(10), {A1}, {A1, V6})
    added = [e for e in probe.events[seen:] if e["kind"] == "address_added"
             and e["address"]["addr"] == "2001:db8:9::1"]
    check(added and added[0]["address"]["status"] == "tentative",
          f"2001:db8:9::1 was not reported tentative first: {[e['text'] for e in probe.events[seen:]]}")
    host.del_address("eth0", "2001:db8:9::1/64")
    expect("delete 2001:db8:9::1", probe.change(), {A1, V6}, {A1})

    seen = len(probe.events)
    host.ip("link", "set", "eth0", "down")
    expect("eth0 down", probe.change(), {A1}, set())
    check(any(e["kind"] == "link_down" and e["ifname"] == "eth0" for e in probe.events[seen:]),
          "no link_down event for eth0")
    check("10.9.0.1" in host.addresses("eth0"), "the kernel dropped 10.9.0.1 on link down")
    host.ip("link", "set", "eth0", "up")
    expect("eth0 up", probe.change(), set(), {A1})

    # Carrier: eth0 stays administratively up, but its peer's end goes away.
    peer.ip("link", "set", "eth0", "down")
    expect("carrier lost", probe.change(), {A1}, set())
    peer.ip("link", "set", "eth0", "up")
    expect("carrier back", probe.change(), set(), {A1})

    # Two addresses in one burst: one change with both, never one with just the first.
    # The gap lets the probe see the first on its own (it does, without debouncing), yet
    # stays well inside the quiet period.
    host.run("ip addr add 10.9.0.3/24 dev eth0 && sleep 0.05 && ip addr add 10.9.0.4/24 dev eth0")
    msg = expect("burst of two", probe.change(), {A1}, {A1, A3, A4})
    check(msg["events"] >= 2, f"coalesced change carries {msg['events']} events")
    probe.no_change(3 * QUIET_MS / 1000 + 0.5)
    check(probe.process.alive(), "addrmon_probe died")

    # A queue too small for a burst while the reader is busy: the kernel drops
    # notifications (ENOBUFS) and only a re-dump can tell what they said.
    stalled = AddrmonProbe(lab, host, "--rcvbuf", "1024", "--stall-ms", "1500")
    base = {A1, A3, A4}
    check(usable(stalled.snapshot()["usable"]) == base, "stalled probe: wrong initial set")
    many = [f"10.9.1.{i}" for i in range(1, 65)]
    host.run(["ip", "-batch", "-"], input="".join(f"addr add {a}/24 dev eth0\n" for a in many))
    msg = expect("64 addresses while stalled", stalled.change(10), base,
                 base | {f"{a}/24%eth0" for a in many})
    check(msg["resyncs"] >= 1, f"no notification was lost, the test proves nothing: {msg}")


if __name__ == "__main__":
    run_test(test, "address monitor")
