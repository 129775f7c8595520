#!/usr/bin/env python3
"""A gateway cluster on etcd (docs/cluster.md), real processes in the topology of
tests/netns/cluster_lab.py: three mobiked nodes, a protected host on their LAN, a mobiked
client behind a MASQUERADE NAT, etcd started here.

  move: one SA handed gw1 -> gw2 under a 10 ms ping from the client to the host (a
    client without switch_allow: it follows because gw1 announced gw2's address):
    `cluster move` reports it moved; the client has the same IKE and Child SPIs and now
    talks to gw2's address, no SA was set up anew anywhere (no rekey); gw2 lists the SA
    as its own with the same SPIs and carries its traffic both ways; gw1 has nothing
    left; the NAT has a mapping to gw2; the host's ARP entry for the client points at
    gw2 (proxy ARP); the ping goes on. Both nodes' metrics endpoints show etcd
    reachable, the move out of gw1 and into gw2, none in flight, and the SAs per node
    (gw1 0, gw2 1). The longest gap is logged.
  hook: the same move with return_traffic = hook: the hook routes the host's traffic.
  refuse: a client that does not allow the cluster's other addresses, which the nodes do
    not announce (announce_addresses = false), refuses: the move is reported returned,
    the SA stays on gw1 with the same SPIs and keeps working.
  etcd_down: etcd stopped: status says unreachable, a move is refused and nothing moves
    or is lost; etcd back: the node reports it reachable again and a move works.
  tampered: forged records for gw2 made from a real move's sealed blob (one bit
    altered; unaltered under another SA's name) are refused and counted by gw2, which
    takes only the real SA.
  not_asked: a client that did not announce switch support is never asked: a drain
    leaves it on gw1, reported not_asked, and it keeps working.
  drain: 100 SAs of mobike-bench clients on gw1; `cluster drain gw1` asked on gw2: gw1
    moves them all to gw2, none lost, no rekey; gw3 joins and `cluster rebalance` on gw2
    gives it half.
  auto_rebalance: rebalance_tolerance = 10: 60 SAs arrive on gw1, gw2 idle: gw1 moves
    SAs to gw2 by itself until they differ by at most 10, nothing moves back, none lost.
  etcd_member: three etcd members; the one in use is killed during a drain of 100 SAs to
    gw2 and gw3: the drain completes, none lost.
  strongswan: a strongSwan client (no switch support) on gw1 is never asked: a drain
    leaves its SA on gw1, working.
  gw2_dies: gw2 dies after importing the SA, before the client's answer reaches it:
    gw1 takes the SA back once gw2's lease is gone, and the client stays with gw1.
  (All of the above with switch_sender = "old", the default: gw1 sends the switch
  request from its own address once gw2 has imported the SA.)
  move_new: `move` with switch_sender = "new": gw2 sends the request from gw1's address.
  filtered: the router drops what a node sends with another node's address (BCP 38):
    the move works as in `move`, and nothing was dropped.
  filtered_new: the same network with switch_sender = "new": gw2's request from gw1's
    address is dropped at the router, the move is reported returned, and the SA stays
    on gw1, working (a rekey from gw1 completes).
  move_v6: `move` with the client reaching the nodes over IPv6 through a NAT66
    (MASQUERADE), each node with an IPv4 and an IPv6 address: the SA moves to gw2's IPv6
    address, the NAT has the new mapping, IPv4 inside the tunnel keeps flowing.
netns-params: move hook refuse etcd_down tampered not_asked drain etcd_member strongswan gw2_dies auto_rebalance move_new filtered filtered_new move_v6
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from cluster_lab import (CLIENT_INNER, GW_PUBLIC, HOST, ClusterLab, antispoof_drops,  # noqa: E402
                         host_neigh, log_gap, mac_of, requires, wait_ping)
from netns import Lab, check, log, netns_param, run_test, wait_until  # noqa: E402
from scenario import Ping  # noqa: E402
from switch_scenarios import nat_mappings  # noqa: E402

PARAMS = ("move", "hook", "refuse", "etcd_down", "tampered", "not_asked", "drain", "etcd_member", "strongswan",
          "gw2_dies", "auto_rebalance", "move_new", "filtered", "filtered_new", "move_v6")


def established_pair(c: ClusterLab, client) -> tuple[dict, dict]:
    sa = client.established("home", timeout=20)
    gw = wait_until(lambda: next((s for s in c.sas_on("gw1") if s["state"] == "ESTABLISHED"), None), 10,
                    "gw1 lists the client's SA")
    return sa, gw


def child_counts(m, spi_in: str) -> tuple[int, int]:
    for s in m.list_sas():
        for ch in s["children"]:
            if ch["spi_in"] == spi_in:
                return ch.get("packets_in", 0), ch.get("packets_out", 0)
    return -1, -1


def mapping_to(c: ClusterLab, dst: str) -> dict | None:
    for m in nat_mappings(c.nat):
        o = m["orig"]
        if o["src"] == c.ini_addr and o["sport"] == 4500 and o["dst"] == dst and o["dport"] == 4500:
            return m
    return None


def check_moved(c: ClusterLab, client, before: dict, before_gw: dict, to: str) -> dict:
    after = client.sa("home")
    check(after is not None and after["state"] == "ESTABLISHED", f"client SA gone: {after}")
    check((after["spi_i"], after["spi_r"]) == (before["spi_i"], before["spi_r"]),
          f"client's IKE SPIs changed: {before['spi_i']}/{before['spi_r']} -> {after['spi_i']}/{after['spi_r']}")
    check([ch["spi_in"] for ch in after["children"]] == [ch["spi_in"] for ch in before["children"]],
          "client's Child SA changed (rekeyed?)")
    check(after["remote"]["addr"] == c.public[to], f"client talks to {after['remote']['addr']}, not {to}")
    on_to = [s for s in c.sas_on(to) if s["spi_i"] == before["spi_i"]]
    check(len(on_to) == 1, f"{to} lists {len(on_to)} copies of the SA")
    check(on_to[0]["owner"] == to and on_to[0]["state"] == "ESTABLISHED", f"{to}'s view: {on_to[0]}")
    check([ch["spi_in"] for ch in on_to[0]["children"]] == [ch["spi_in"] for ch in before_gw["children"]],
          f"{to}'s Child SA SPIs differ from gw1's")
    left = [s for s in c.sas_on("gw1") if s["spi_i"] == before["spi_i"]]
    check(not left, f"gw1 still lists the SA: {left}")
    check(mapping_to(c, c.public[to]) is not None, f"the NAT has no mapping to {to}: {nat_mappings(c.nat)}")
    return on_to[0]


METRICS = "127.0.0.1:9560"  # each node's, in its own namespace


def check_cluster_metrics(c: ClusterLab) -> None:
    """The cluster's state on the metrics endpoint after one move gw1 -> gw2, as both
    nodes see it."""
    from test_metrics import scrape, value
    for node, out, into in (("gw1", 1, 0), ("gw2", 0, 1)):
        m = scrape(c.gw[node], METRICS)
        check(value(m, "mobiked_cluster_etcd_reachable") == 1, f"{node}: etcd not reachable in its metrics")
        check(value(m, "mobiked_cluster_events_total", event="moves_out") == out
              and value(m, "mobiked_cluster_events_total", event="moves_in") == into,
              f"{node}: moves out/in in its metrics are not {out}/{into}")
        check(value(m, "mobiked_cluster_moves_in_flight") == 0, f"{node}: moves still in flight in its metrics")

        def node_sas(node=node):  # published with each node's record: may trail the move
            m = scrape(c.gw[node], METRICS)
            return all(value(m, "mobiked_cluster_node_sas", node=n, state="active") == sas
                       for n, sas in (("gw1", 0), ("gw2", 1)))
        wait_until(node_sas, 10, f"{node}'s metrics showing gw1 with 0 SAs and gw2 with 1")
    log("  metrics: etcd reachable, moves out/in, SAs per node (gw1 0, gw2 1) on both nodes' endpoints")


def run_move(lab: Lab, return_traffic: str, switch_sender: str = "old", source_filter: bool = False,
             ipv6: bool = False) -> None:
    c = ClusterLab(lab, return_traffic=return_traffic, switch_sender=switch_sender, source_filter=source_filter,
                   ipv6=ipv6)
    c.start_nodes(metrics=METRICS)
    # No switch_allow: the nodes announce each other's addresses (announce_addresses).
    client = c.client(allow_cluster=False)
    before, before_gw = established_pair(c, client)
    wait_ping(c.ini, CLIENT_INNER, HOST)
    if return_traffic == "proxy_arp":
        check(mac_of(c.gw["gw1"], "eth1") in host_neigh(c.host, CLIENT_INNER),
              f"the host's ARP entry for the client is not gw1's: {host_neigh(c.host, CLIENT_INNER)}")
    ping = Ping(c.ini, CLIENT_INNER, HOST)
    wait_until(lambda: len(ping.times()) > 50, 10, "ping replies before the move")
    t0 = time.time()
    res = c.move("gw1", before_gw["id"], "gw2")
    log(f"  cluster move: {json.dumps(res)}")
    check(res.get("moved") == 1, f"cluster move did not report the SA moved: {res}")
    ping.wait_reply_after(time.time(), 10, "ping replies after the move")
    time.sleep(1.0)
    on_gw2 = check_moved(c, client, before, before_gw, "gw2")
    check(on_gw2.get("ha_sync") == ["message_id", "replay_counter"],
          f"mobiked claims RFC 6311 (both), yet gw2 lists {on_gw2.get('ha_sync')}")
    spi = on_gw2["children"][0]["spi_in"]
    a = child_counts(c.nodes["gw2"], spi)
    time.sleep(0.5)
    b = child_counts(c.nodes["gw2"], spi)
    check(b[0] > a[0] and b[1] > a[1], f"gw2 carries no traffic both ways: {a} -> {b}")
    if return_traffic == "proxy_arp":
        check(mac_of(c.gw["gw2"], "eth1") in host_neigh(c.host, CLIENT_INNER),
              f"the host's ARP entry for the client is not gw2's: {host_neigh(c.host, CLIENT_INNER)}")
    else:
        route = c.host.ip("route", "show", CLIENT_INNER).stdout
        check("10.50.0.2" in route, f"the host's route to the client is not via gw2: {route}")
    st = c.status("gw1")
    check(st["counters"]["moves_out"] == 1, f"gw1 counters: {st['counters']}")
    check(c.status("gw2")["counters"]["moves_in"] == 1, f"gw2 counters: {c.status('gw2')['counters']}")
    check_cluster_metrics(c)
    ping.stop()
    stats = ping.stats()
    log_gap(stats)
    log(f"  move took {(time.time() - t0):.2f} s to report (including 1.5 s of checks)")
    est = [ln for ln in c.nodes["gw2"].log_text().splitlines() if "IKE SA established" in ln]
    check(not est, f"gw2 established an IKE SA of its own (re-authentication?): {est}")
    relayed = "sending MOBIKE_SWITCH for the node that took the SA over" in c.nodes["gw1"].log_text()
    check(relayed == (switch_sender == "old"),
          f"switch_sender = {switch_sender}, but gw1 {'did' if relayed else 'did not'} send the switch request")
    if source_filter:
        check(antispoof_drops(c.nat) == 0, f"the router dropped {antispoof_drops(c.nat)} spoofed packets")


def check_stayed_on_gw1(c: ClusterLab, client, before: dict, what: str) -> None:
    """After a move that came back: the client's SA is the same one, on gw1; gw2 kept no
    copy; traffic flows; and the SA still works for IKE too (a Child SA rekey from gw1
    completes, so both sides agree on the Message IDs)."""
    after = client.sa("home")
    check(after and (after["spi_i"], after["spi_r"]) == (before["spi_i"], before["spi_r"]) and
          after["remote"]["addr"] == GW_PUBLIC["gw1"], f"client SA after {what}: {after}")
    check(not [s for s in c.sas_on("gw2") if s["spi_i"] == before["spi_i"]], "gw2 kept a copy")
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=10)
    gw1 = c.sas_on("gw1")[0]
    c.nodes["gw1"].ctl("rekey", "--child", str(gw1["children"][0]["id"]))
    wait_until(lambda: (s := client.sa("home")) and s["children"] and
               s["children"][0]["spi_in"] != before["children"][0]["spi_in"], 10, f"gw1's rekey after {what}")
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=10)


def run_filtered_new(lab: Lab) -> None:
    """The new node asks from the old node's address, which the router refuses."""
    c = ClusterLab(lab, switch_sender="new", source_filter=True)
    c.start_nodes(retransmit_timeout=0.3)  # gw2 gives up after ~7 s, well within move_timeout
    client = c.client()
    before, before_gw = established_pair(c, client)
    wait_ping(c.ini, CLIENT_INNER, HOST)
    res = c.move("gw1", before_gw["id"], "gw2", check_rc=False)
    log(f"  cluster move: {json.dumps(res)}")
    check(res.get("returned") == 1 and res.get("moved") == 0, f"the move is not reported returned: {res}")
    drops = antispoof_drops(c.nat)
    log(f"  the router dropped {drops} packet(s) gw2 sent with gw1's address")
    check(drops >= 1, "the router dropped nothing: the filter is not in force")
    check_stayed_on_gw1(c, client, before, "the failed move")


def run_refuse(lab: Lab) -> None:
    c = ClusterLab(lab, announce=False)
    c.start_nodes()
    client = c.client(allow_cluster=False)
    before, before_gw = established_pair(c, client)
    wait_ping(c.ini, CLIENT_INNER, HOST)
    res = c.move("gw1", before_gw["id"], "gw2", check_rc=False)
    log(f"  cluster move: {json.dumps(res)}")
    check(res.get("returned") == 1 and res.get("moved") == 0, f"the refused move is not reported returned: {res}")
    check_stayed_on_gw1(c, client, before, "the refusal")


def run_etcd_down(lab: Lab) -> None:
    c = ClusterLab(lab)
    c.start_nodes()
    client = c.client()
    before, before_gw = established_pair(c, client)
    wait_ping(c.ini, CLIENT_INNER, HOST)
    c.etcd.kill("e1")
    wait_until(lambda: not c.status("gw1")["etcd"]["reachable"], 15, "gw1 reports etcd unreachable")
    st = c.status("gw1")
    log(f"  gw1 while etcd is down: {json.dumps(st['etcd'])}")
    r = c.nodes["gw1"].ctl("cluster", "move", "--sa", str(before_gw["id"]), "--to", "gw2", check=False)
    check(r.returncode != 0 and "etcd" in r.stderr, f"a move while etcd is down was not refused: {r.stdout}{r.stderr}")
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=5)
    check("unreachable" in c.nodes["gw1"].log_text(), "gw1 did not log etcd unreachable")
    c.etcd.start("e1")
    wait_until(lambda: c.status("gw1")["etcd"]["reachable"], 20, "gw1 reports etcd reachable again")
    wait_until(lambda: len(c.status("gw1")["nodes"]) == 3, 20, "gw1 sees the three nodes again")
    res = c.move("gw1", before_gw["id"], "gw2")
    check(res.get("moved") == 1, f"the move after etcd came back: {res}")
    check_moved(c, client, before, before_gw, "gw2")
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=10)


def run_tampered(lab: Lab) -> None:
    """gw2 is held (SIGSTOP) while gw1 writes a real move's record; next to it two
    records for gw2 are forged from that record's sealed blob: one altered by a bit, one
    unaltered but stored under another SA's name. gw2, released, takes the real one and
    refuses both forgeries (counted); nothing else appears on gw2."""
    import threading
    c = ClusterLab(lab)
    c.start_nodes()
    client = c.client()
    before, before_gw = established_pair(c, client)
    wait_ping(c.ini, CLIENT_INNER, HOST)
    gw2 = c.nodes["gw2"]
    os.kill(gw2.proc.pid, signal.SIGSTOP)
    result = {}
    t = threading.Thread(target=lambda: result.update(c.move("gw1", before_gw["id"], "gw2", check_rc=False)))
    t.start()

    def moving():
        for k, v in c.etcd.get_prefix("/mobiked/sas/").items():
            if v[:2] == "\x02\x01":  # record version 2, phase moving
                return (k, v)
        return None
    try:
        k, v = wait_until(moving, 10, "gw1's moving record in etcd")
        raw = v.encode("latin-1")
        altered = bytearray(raw)
        # Inside the sealed blob's ciphertext: the record ends with the blob's 16-octet
        # tag, the empty detail (2), the flags (1) and no address (1).
        altered[-22] ^= 0x01
        c.etcd.put("/mobiked/sas/00000000000000aa-00000000000000bb", bytes(altered))
        c.etcd.put("/mobiked/sas/00000000000000cc-00000000000000dd", raw)
    finally:
        os.kill(gw2.proc.pid, signal.SIGCONT)
    t.join(30)
    log(f"  cluster move: {json.dumps(result)}")
    check(result.get("moved") == 1, f"the genuine move: {result}")
    counters = wait_until(lambda: (st := c.status("gw2")["counters"])["blobs_refused"] >= 2 and st, 10,
                          "gw2 refuses both forged blobs")
    log(f"  gw2 counters: {json.dumps(counters)}")
    check(counters["moves_in"] == 1, f"gw2 took more than the genuine SA: {counters}")
    check(len(c.sas_on("gw2")) == 1, f"gw2 lists {len(c.sas_on('gw2'))} SAs")
    check("authentication" in gw2.log_text(), "gw2 did not log why it refused the blobs")
    check_moved(c, client, before, before_gw, "gw2")
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=10)


def run_not_asked(lab: Lab) -> None:
    c = ClusterLab(lab)
    c.start_nodes()
    client = c.client()
    # This client does not announce the switch: switch = false.
    client.stop()
    from mobiked import MConn, Mobiked
    m = Mobiked(lab, c.ini, "mobiked-ini-noswitch", dataplane="userspace")
    m.start([MConn(name="home", local_id="client.cluster.test", remote_id="gw.cluster.test",
                   local_ts=[CLIENT_INNER + "/32"], remote_ts=["10.50.0.0/24"], remote_addrs=[GW_PUBLIC["gw1"]],
                   start="initiate", extra={"switch": False})])
    before = m.established("home")
    wait_ping(c.ini, CLIENT_INNER, HOST)
    r = c.nodes["gw1"].ctl("cluster", "drain", "--json", check=False)
    res = json.loads(r.stdout)
    log(f"  cluster drain: {json.dumps(res)}")
    check(res.get("not_asked") == 1 and res.get("moved") == 0, f"drain with a client without switch: {res}")
    after = m.sa("home")
    check(after and after["spi_i"] == before["spi_i"] and after["remote"]["addr"] == GW_PUBLIC["gw1"],
          f"the client was moved: {after}")
    check("SWITCH" not in "".join(ln for ln in m.log_text().splitlines() if "switch" in ln.lower() and "asks" in ln),
          "the client was asked to switch")
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=10)


def run_drain(lab: Lab) -> None:
    """100 SAs from mobike-bench on gw1 with gw2 up: drain gw1 (all to gw2, none lost,
    no rekey); gw3 joins; rebalance on gw2 shares them with gw3."""
    c = ClusterLab(lab)
    c.start_nodes(("gw1", "gw2"))
    proc, _ = c.bench(100, hold=14)
    check(len(c.sas_on("gw1")) == 100, f"gw1 has {len(c.sas_on('gw1'))} SAs, not 100")
    # Asked from gw2: gw1 drains itself (through etcd's requests/gw1).
    r = c.nodes["gw2"].ctl("cluster", "drain", "gw1", "--json", check=False)
    check(r.returncode == 0 and json.loads(r.stdout).get("requested") == "gw1", f"drain gw1 from gw2: {r.stdout}{r.stderr}")
    t0 = time.time()
    wait_until(lambda: c.status("gw1")["state"] == "drained", 30, "gw1 drained")
    log(f"  drain of gw1 asked from gw2: done after {time.time() - t0:.2f} s")
    check(not c.sas_on("gw1"), "gw1 still has SAs after the drain")
    check(c.status("gw1")["counters"]["moves_out"] == 100, f"gw1's counters: {c.status('gw1')['counters']}")
    wait_until(lambda: len(c.sas_on("gw2")) == 100, 10, "gw2 holds the 100 SAs")
    # A node joins; gw1, drained, takes none.
    c.start_node("gw3")
    wait_until(lambda: len(c.status("gw2")["nodes"]) == 3, 15, "gw2 sees gw3")
    wait_until(lambda: next(n for n in c.status("gw2")["nodes"] if n["name"] == "gw3")["state"] == "active", 10,
               "gw3 active")
    r = c.nodes["gw2"].ctl("--timeout", "60", "cluster", "rebalance", "--json", check=False)
    res = json.loads(r.stdout)
    log(f"  rebalance on gw2: moved {res.get('moved')} in {res.get('seconds', 0):.2f} s")
    check(r.returncode == 0 and res.get("moved") == 50, f"rebalance: {json.dumps(res)[:2000]}")
    n2, n3 = len(c.sas_on("gw2")), len(c.sas_on("gw3"))
    check((n2, n3) == (50, 50), f"after the rebalance gw2 has {n2}, gw3 {n3} SAs")
    check(not c.sas_on("gw1"), "the drained gw1 received SAs")
    rep = c.bench_report(proc, 60)
    log(f"  mobike-bench: held {rep['held']}, moved {rep['moved']}, lost {rep['lost']}, rekeyed {rep['rekeyed']}, "
        f"at the end {rep['remote_addresses']}")
    check(rep["held"] == 100 and rep["lost"] == 0 and rep["rekeyed"] == 0, f"mobike-bench: {rep}")
    check(rep["remote_addresses"] == {GW_PUBLIC["gw2"]: 50, GW_PUBLIC["gw3"]: 50},
          f"the clients' view of where their SAs are: {rep['remote_addresses']}")


def run_auto_rebalance(lab: Lab) -> None:
    c = ClusterLab(lab, nodes=("gw1", "gw2"))
    c.start_node("gw1", extra="rebalance_tolerance = 10\n")
    c.start_node("gw2", extra="rebalance_tolerance = 10\n")
    c.wait_members(("gw1", "gw2"))
    # gw2 joins late for the SAs: they all land on gw1 first.
    proc, _ = c.bench(60, hold=10)
    wait_until(lambda: len(c.sas_on("gw2")) >= 20, 15, "gw1 hands SAs to gw2 by itself")
    time.sleep(4)  # a few ticks more: nothing moves back and forth
    n1, n2 = len(c.sas_on("gw1")), len(c.sas_on("gw2"))
    check(n1 + n2 == 60 and abs(n1 - n2) <= 10, f"after the automatic rebalance gw1 has {n1}, gw2 {n2}")
    check(c.status("gw2")["counters"]["moves_out"] == 0, "gw2 handed SAs back")
    check("automatic rebalance" in c.nodes["gw1"].log_text(), "gw1 did not log the automatic rebalance")
    rep = c.bench_report(proc, 60)
    log(f"  mobike-bench: held {rep['held']}, moved {rep['moved']}, lost {rep['lost']}, {rep['remote_addresses']}")
    # (The moves may come before the bench's hold begins: its "moved" counts from there.)
    check(rep["held"] == 60 and rep["lost"] == 0 and rep["rekeyed"] == 0 and
          rep["remote_addresses"] == {GW_PUBLIC["gw1"]: n1, GW_PUBLIC["gw2"]: n2}, f"mobike-bench: {rep}")


def run_etcd_member(lab: Lab) -> None:
    """Three etcd members; the one the nodes talk to is killed during a drain of 100 SAs
    to gw2 and gw3: the drain completes, none lost."""
    c = ClusterLab(lab, etcd_members=3)
    c.start_nodes()
    proc, _ = c.bench(100, hold=10)
    import threading
    out = {}
    t = threading.Thread(target=lambda: out.update(
        r=c.nodes["gw1"].ctl("--timeout", "60", "cluster", "drain", "--json", check=False)))
    t.start()
    wait_until(lambda: c.status("gw2")["counters"]["moves_in"] + c.status("gw3")["counters"]["moves_in"] >= 10,
               20, "the drain under way")
    c.etcd.kill("e1")
    t.join(60)
    r = out["r"]
    res = json.loads(r.stdout)
    log(f"  drain with e1 killed: moved {res.get('moved')}, returned {res.get('returned')}, "
        f"failed {res.get('failed')} in {res.get('seconds', 0):.2f} s")
    for n in ("gw1", "gw2", "gw3"):
        log(f"  {n}: etcd {json.dumps(c.status(n)['etcd'])}")
    check(res.get("moved", 0) + res.get("returned", 0) == 100, f"drain: {json.dumps(res)[:2000]}")
    check(len(c.sas_on("gw1")) == res.get("returned", 0), f"gw1 holds {len(c.sas_on('gw1'))} SAs")
    check(len(c.sas_on("gw2")) + len(c.sas_on("gw3")) == res.get("moved", 0), "SAs on gw2 and gw3")
    rep = c.bench_report(proc, 60)
    log(f"  mobike-bench: held {rep['held']}, moved {rep['moved']}, lost {rep['lost']}, {rep['remote_addresses']}")
    check(rep["held"] == 100 and rep["lost"] == 0 and rep["rekeyed"] == 0, f"mobike-bench: {rep}")
    check(res.get("moved") == 100, f"not every SA moved: {json.dumps(res)[:2000]}")


def run_strongswan(lab: Lab) -> None:
    """A strongSwan client (charon, kernel-libipsec) on gw1: MOBIKE but no switch support.
    A drain never asks it; its SA stays on gw1 and keeps working."""
    c = ClusterLab(lab)
    c.start_nodes()
    charon, sa = c.strongswan_client()
    # charon claims RFC 6311 Message ID sync in its IKE_AUTH (not the replay counters):
    # what a failover can use for this client.
    gw_view = wait_until(lambda: next(iter(c.sas_on("gw1")), None), 10, "gw1 lists the strongSwan SA")
    log(f"  gw1 sees the client's RFC 6311 claims: {gw_view.get('ha_sync')}")
    check(gw_view.get("ha_sync") == ["message_id"], f"gw1's view of the strongSwan SA: {gw_view}")
    r = c.nodes["gw1"].ctl("cluster", "drain", "--json", check=False)
    res = json.loads(r.stdout)
    log(f"  drain: {json.dumps(res)}")
    check(res.get("not_asked") == 1 and res.get("moved") == 0, f"drain with a strongSwan client: {res}")
    after = charon.list_sas().get("home")
    check(after and after.get("state") == "ESTABLISHED" and after.get("remote-host") == GW_PUBLIC["gw1"] and
          after.get("initiator-spi") == sa.get("initiator-spi"), f"strongSwan's SA after the drain: {after}")
    check(not c.sas_on("gw2") and not c.sas_on("gw3"), "the strongSwan SA appeared on another node")
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=10)
    text = charon.log_text()
    check("61440" not in text and "SWITCH" not in text.upper().replace("SWITCHING", ""),
          "charon saw a switch request")


def run_gw2_dies(lab: Lab) -> None:
    """gw2 imports the SA and asks the client to switch, but the client's answer cannot
    reach gw2 (dropped at the NAT) and gw2 is killed: once its lease is gone, gw1 takes
    the SA back; the client, whose update to gw2 goes unanswered, stays with gw1."""
    c = ClusterLab(lab)
    c.start_nodes()
    client = c.client()
    before, before_gw = established_pair(c, client)
    wait_ping(c.ini, CLIENT_INNER, HOST)
    c.nat.iptables("-I", "FORWARD", "-d", GW_PUBLIC["gw2"], "-j", "DROP")
    import threading
    out = {}
    t = threading.Thread(target=lambda: out.update(c.move("gw1", before_gw["id"], "gw2", check_rc=False)))
    t.start()
    wait_until(lambda: any(s["spi_i"] == before["spi_i"] for s in c.sas_on("gw2")), 10, "gw2 imported the SA")
    os.kill(c.nodes["gw2"].proc.pid, signal.SIGKILL)
    t.join(40)
    res = out
    log(f"  cluster move: {json.dumps(res)}")
    check(res.get("returned") == 1, f"the move to the dead gw2 is not reported returned: {res}")
    check("gw2 left" in json.dumps(res), f"the reason does not say gw2 left: {res}")
    c.nat.iptables("-D", "FORWARD", "-d", GW_PUBLIC["gw2"], "-j", "DROP")
    gw1 = [s for s in c.sas_on("gw1") if s["spi_i"] == before["spi_i"]]
    check(len(gw1) == 1 and "moving_to" not in gw1[0], f"gw1's copy after the take-back: {gw1}")
    wait_until(lambda: (s := client.sa("home")) and s["state"] == "ESTABLISHED" and
               s["remote"]["addr"] == GW_PUBLIC["gw1"] and s["spi_i"] == before["spi_i"], 40,
               "the client back on gw1 with the same SA")
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=20)


def test(lab: Lab) -> None:
    p = netns_param(PARAMS)
    {"move": lambda: run_move(lab, "proxy_arp"), "hook": lambda: run_move(lab, "hook"),
     "refuse": lambda: run_refuse(lab), "etcd_down": lambda: run_etcd_down(lab),
     "tampered": lambda: run_tampered(lab), "not_asked": lambda: run_not_asked(lab),
     "drain": lambda: run_drain(lab), "etcd_member": lambda: run_etcd_member(lab),
     "strongswan": lambda: run_strongswan(lab), "gw2_dies": lambda: run_gw2_dies(lab),
     "auto_rebalance": lambda: run_auto_rebalance(lab),
     "move_new": lambda: run_move(lab, "proxy_arp", switch_sender="new"),
     "filtered": lambda: run_move(lab, "proxy_arp", source_filter=True),
     "filtered_new": lambda: run_filtered_new(lab),
     "move_v6": lambda: run_move(lab, "proxy_arp", ipv6=True)}[p]()


if __name__ == "__main__":
    run_test(test, f"cluster: {netns_param(PARAMS)}", requires=requires, timeout=150)
