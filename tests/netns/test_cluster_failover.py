#!/usr/bin/env python3
"""Failover in a gateway cluster on etcd (docs/cluster.md "Failover"): real processes in
the topology of tests/netns/cluster_lab.py; gw1 is killed with SIGKILL.

  mobiked: a mobiked client (RFC 6311 and the switch) on gw1 under a 10 ms ping to the
    host. gw1 checkpoints the SA into etcd; SIGKILL; once gw1's lease (3 s) expires,
    exactly one of gw2/gw3 claims the SA and sends the combined message (Message ID
    synchronisation + SWITCH_TO_IP_ADDRESS, from gw1's address): the client answers
    there, updates, and keeps its IKE SA (same SPIs, no new authentication anywhere);
    traffic flows through the survivor, whose status counts the claim; the Child SA is
    rekeyed right after. The time from SIGKILL to the first ping reply is logged.
  strongswan: a strongSwan client (RFC 6311 Message ID sync, no switch) on gw1: the
    survivor takes gw1's address over (added on its interface, announced by ARP) and
    synchronises from there; strongSwan keeps its IKE SA (its own --list-sas: same
    SPIs, established) and traffic flows again.
  many: 200 SAs of mobike-bench clients on gw1, checkpointed; SIGKILL: gw2 and gw3 share
    them out (each SA claimed once), every client follows the combined message, none
    lost (mobike-bench's own count), none re-authenticated. The time until all claimed
    and until the bench's clients all sit on a survivor is logged.
  survivor_dies: as `mobiked`, but the survivor that claims the SA is killed too, right
    after its claim: the last node claims it from the survivor's record and the client
    follows it, still with the same IKE SA.
  returns: gw1 is killed and started again before its lease runs out (nobody takes
    over): the new gw1 finds its own record and continues the SA from its own address;
    exactly one node runs it and the client keeps its IKE SA.
  etcd_member: three etcd members; the one the survivors use is killed together with
    gw1: the failover completes through the other two.
  stop: gw1 stopped (SIGTERM): it deletes its SA (DELETE to the client) and its record;
    no survivor claims anything.
  returns_late: gw1 is started again after a survivor claimed its SA: it runs nothing,
    claims nothing, and the client stays with the survivor.
  replay: the combined message, captured at the router, is sent to the client again
    (from gw1's address, through its NAT): answered from the client's cache as a
    retransmission, applied once (one synchronisation, one replay counter jump); the
    same message with one octet altered is dropped and counted; the SA goes on.
netns-params: mobiked strongswan many survivor_dies returns etcd_member stop returns_late replay
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from cluster_lab import CLIENT_INNER, GW_PUBLIC, HOST, ClusterLab, log_gap, requires, wait_ping  # noqa: E402
from netns import Lab, check, log, netns_param, run_test, wait_until  # noqa: E402
from scenario import Ping  # noqa: E402

PARAMS = ("mobiked", "strongswan", "many", "survivor_dies", "returns", "etcd_member", "stop", "returns_late",
          "replay")
SURVIVORS = ("gw2", "gw3")


def start_cluster(lab: Lab, etcd_members: int = 1) -> ClusterLab:
    c = ClusterLab(lab, etcd_members=etcd_members)
    for n in c.gw:
        start_node(c, n)
    c.wait_members(tuple(c.gw))
    return c


def start_node(c: ClusterLab, n: str):
    return c.start_node(n, extra='checkpoint_interval = "1s"\n')


def wait_checkpointed(c: ClusterLab) -> None:
    wait_until(lambda: c.status("gw1")["failover"]["checkpoints"] >= 1, 10, "gw1 checkpoints the SA into etcd")
    records = c.etcd.get_prefix("/mobiked/sas/")
    check(len(records) == 1, f"etcd holds {len(records)} SA records: {list(records)}")


def kill(c: ClusterLab, node: str = "gw1", machine: bool = True) -> float:
    """SIGKILL to the node's mobiked; `machine`: the whole machine is gone, its links
    down (a crashed mobiked on a live machine keeps answering ARP for its address, and
    no survivor could take that address over: docs/cluster.md)."""
    t = time.time()
    os.killpg(c.nodes[node].proc.popen.pid, signal.SIGKILL)
    if machine:
        for dev in ("eth0", "eth1"):
            c.gw[node].ip("link", "set", dev, "down")
    c.nodes[node].proc.popen.wait(5)
    return t


def revive(c: ClusterLab, node: str) -> None:
    for dev in ("eth0", "eth1"):
        c.gw[node].ip("link", "set", dev, "up")


kill_gw1 = kill


def survivor(c: ClusterLab) -> str | None:
    for n in SURVIVORS:
        if c.status(n)["failover"]["claimed"]:
            return n
    return None


def check_survivors(c: ClusterLab, spi_i: str, kind: str) -> str:
    w = wait_until(lambda: survivor(c), 20, "a survivor claims gw1's SA")
    other = next(n for n in SURVIVORS if n != w)
    fw, fo = c.status(w)["failover"], c.status(other)["failover"]
    log(f"  {w} claimed the SA: {json.dumps(fw)}")
    check(fw["claimed"] == 1 and fw[f"claimed_{kind}"] == 1 and fw["lost"] == 0, f"{w}'s failover view: {fw}")
    check(fo["claimed"] == 0 and fo["lost"] == 0, f"{other} claimed or lost something too: {fo}")
    on_w = [s for s in c.sas_on(w) if s["spi_i"] == spi_i]
    check(len(on_w) == 1 and on_w[0]["state"] == "ESTABLISHED", f"{w} lists {on_w}")
    check(not [s for s in c.sas_on(other) if s["spi_i"] == spi_i], f"{other} runs the SA too")
    est = [ln for ln in c.nodes[w].log_text().splitlines() if "IKE SA established" in ln]
    check(not est, f"{w} established an IKE SA of its own (re-authentication?): {est}")
    return w


def run_mobiked(lab: Lab) -> None:
    c = start_cluster(lab)
    client = c.client()
    before = client.established("home", timeout=20)
    wait_ping(c.ini, CLIENT_INNER, HOST)
    gw1 = wait_until(lambda: next(iter(c.sas_on("gw1")), None), 10, "gw1 lists the client's SA")
    check(gw1.get("ha_sync") == ["message_id", "replay_counter"], f"gw1's view of the client's claims: {gw1}")
    wait_checkpointed(c)
    ping = Ping(c.ini, CLIENT_INNER, HOST)
    time.sleep(1.0)
    t_kill = kill_gw1(c)
    wait_until(lambda: (s := client.sa("home")) and s["remote"]["addr"] != GW_PUBLIC["gw1"], 20,
               "the client follows a survivor")
    first = ping.wait_reply_after(t_kill, 20, "a ping reply through the survivor")
    log(f"  failover: {first - t_kill:.2f} s from SIGKILL to the first ping reply (lease TTL 3 s)")
    w = check_survivors(c, before["spi_i"], "combined")
    after = client.sa("home")
    check((after["spi_i"], after["spi_r"]) == (before["spi_i"], before["spi_r"]) and after["state"] == "ESTABLISHED",
          f"the client's IKE SA changed: {before['spi_i']}/{before['spi_r']} -> {after}")
    check(after["remote"]["addr"] == GW_PUBLIC[w], f"the client talks to {after['remote']['addr']}, not {w}")
    est = [ln for ln in client.log_text().splitlines() if "IKE SA established" in ln]
    check(len(est) == 1, f"the client established {len(est)} IKE SAs: {est}")
    check("synchronised Message IDs" in client.log_text(), "the client logged no RFC 6311 synchronisation")
    # RFC 6311 §7: the Child SA is rekeyed soon after the synchronisation.
    old_child = before["children"][0]["spi_in"]
    wait_until(lambda: (s := client.sa("home")) and s["children"] and
               all(ch["spi_in"] != old_child for ch in s["children"]), 15, "the Child SA rekeyed after the failover")
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=10)
    ping.stop()
    log_gap(ping.stats())
    st = client.stats()
    check(st["mid_sync"]["answered"] == 1 and st["dropped"]["sync"] == 0, f"the client's RFC 6311 counters: {st}")


def run_strongswan(lab: Lab) -> None:
    c = start_cluster(lab)
    charon, sa = c.strongswan_client()
    gw1 = wait_until(lambda: next(iter(c.sas_on("gw1")), None), 10, "gw1 lists the strongSwan SA")
    check(gw1.get("ha_sync") == ["message_id"], f"gw1's view of strongSwan's claims: {gw1}")
    wait_checkpointed(c)
    t_kill = kill_gw1(c)
    w = wait_until(lambda: survivor(c), 20, "a survivor claims gw1's SA")
    wait_until(lambda: GW_PUBLIC["gw1"] in c.gw[w].ip("-4", "addr", "show", "dev", "eth0").stdout, 10,
               f"{w} holds gw1's address")
    check_survivors(c, gw1["spi_i"], "plain")
    check(c.status(w)["failover"]["addresses_taken_over"] == [GW_PUBLIC["gw1"]], f"{w}: {c.status(w)['failover']}")
    wait_until(lambda: "synchronising" in c.nodes[w].log_text() and
               "Message IDs synchronised" in c.nodes[w].log_text(), 15, f"{w} synchronised with strongSwan")
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=20)
    log(f"  strongSwan back through {w} {time.time() - t_kill:.2f} s after SIGKILL (lease TTL 3 s)")
    check("MID sync" in charon.log_text(), "charon logged no RFC 6311 synchronisation")
    after = charon.list_sas().get("home")
    check(after and after.get("state") == "ESTABLISHED" and after.get("initiator-spi") == sa.get("initiator-spi") and
          after.get("responder-spi") == sa.get("responder-spi"), f"strongSwan's IKE SA after the failover: {after}")


def mobiked_on_gw1(c: ClusterLab):
    client = c.client()
    before = client.established("home", timeout=20)
    wait_ping(c.ini, CLIENT_INNER, HOST)
    wait_checkpointed(c)
    return client, before


def same_ike_sa(client, before: dict) -> dict:
    after = client.sa("home")
    check(after and (after["spi_i"], after["spi_r"]) == (before["spi_i"], before["spi_r"]) and
          after["state"] == "ESTABLISHED", f"the client's IKE SA changed: {before['spi_i']}/{before['spi_r']} -> {after}")
    est = [ln for ln in client.log_text().splitlines() if "IKE SA established" in ln]
    check(len(est) == 1, f"the client established {len(est)} IKE SAs: {est}")
    return after


def run_many(lab: Lab) -> None:
    n = 200
    c = start_cluster(lab)
    proc, _ = c.bench(n, hold=12)
    check(len(c.sas_on("gw1")) == n, f"gw1 has {len(c.sas_on('gw1'))} SAs, not {n}")
    wait_until(lambda: c.status("gw1")["failover"]["checkpoints"] >= n, 15, f"gw1 checkpoints its {n} SAs")
    t_kill = kill(c)

    def claimed():
        return sum(c.status(w)["failover"]["claimed"] for w in SURVIVORS)
    wait_until(lambda: claimed() == n, 30, f"the survivors claim all {n} SAs")
    t_claimed = time.time()

    def on_survivors():
        return sum(len(c.sas_on(w)) for w in SURVIVORS)
    wait_until(lambda: sum(c.nodes[w].stats()["mid_sync"]["completed"] for w in SURVIVORS) == n, 30,
               f"all {n} SAs synchronised")
    t_synced = time.time()
    views = {w: c.status(w)["failover"] for w in SURVIVORS}
    log(f"  {n} SAs: all claimed {t_claimed - t_kill:.2f} s and synchronised {t_synced - t_kill:.2f} s after "
        f"SIGKILL (lease TTL 3 s); gw2 {views['gw2']['claimed']}, gw3 {views['gw3']['claimed']}")
    for w, v in views.items():
        check(v["lost"] == 0 and v["claimed"] == v["claimed_combined"], f"{w}: {v}")
    check(min(v["claimed"] for v in views.values()) > 0, f"one survivor took everything: {views}")
    check(on_survivors() == n, "the survivors do not list every SA")
    rep = c.bench_report(proc, 90)
    log(f"  mobike-bench: held {rep['held']}, lost {rep['lost']}, rekeyed {rep['rekeyed']}, "
        f"at the end {rep['remote_addresses']}")
    check(rep["held"] == n and rep["lost"] == 0 and rep["rekeyed"] == 0, f"mobike-bench: {rep}")
    check(GW_PUBLIC["gw1"] not in (rep["remote_addresses"] or {}), f"clients still on gw1: {rep['remote_addresses']}")


def run_survivor_dies(lab: Lab) -> None:
    c = start_cluster(lab)
    client, before = mobiked_on_gw1(c)
    kill(c)
    first = wait_until(lambda: survivor(c), 20, "a survivor claims gw1's SA")
    kill(c, first)
    last = next(n for n in SURVIVORS if n != first)
    log(f"  {first} claimed the SA and was killed too; {last} is left")
    wait_until(lambda: c.status(last)["failover"]["claimed"] == 1, 20, f"{last} claims the SA from {first}")
    wait_until(lambda: (s := client.sa("home")) and s["remote"]["addr"] == GW_PUBLIC[last], 20,
               f"the client follows {last}")
    same_ike_sa(client, before)
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=15)


def run_returns(lab: Lab) -> None:
    c = start_cluster(lab)
    client, before = mobiked_on_gw1(c)
    kill(c, machine=False)  # the process only: it is started again at once
    start_node(c, "gw1")
    wait_until(lambda: c.status("gw1")["failover"]["claimed"] == 1, 15, "the restarted gw1 continues its own SA")
    time.sleep(4)  # past the old lease: nobody else may act on it
    holders = [n for n in c.gw if [s for s in c.sas_on(n) if s["spi_i"] == before["spi_i"]]]
    check(holders == ["gw1"], f"the SA runs on {holders}")
    for w in SURVIVORS:
        check(c.status(w)["failover"]["claimed"] == 0, f"{w} claimed it too: {c.status(w)['failover']}")
    after = same_ike_sa(client, before)
    check(after["remote"]["addr"] == GW_PUBLIC["gw1"], f"the client left gw1: {after['remote']}")
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=15)


def run_etcd_member(lab: Lab) -> None:
    c = start_cluster(lab, etcd_members=3)
    client, before = mobiked_on_gw1(c)
    used = {c.status(w)["etcd"]["endpoint"] for w in SURVIVORS}
    log(f"  the survivors use etcd at {sorted(used)}")
    t = kill(c)
    for name, ep in zip(c.etcd.names, c.etcd.endpoints):
        if ep in used:
            c.etcd.kill(name)
            log(f"  killed etcd member {name} ({ep})")
            break
    wait_until(lambda: (s := client.sa("home")) and s["remote"]["addr"] != GW_PUBLIC["gw1"], 30,
               "the client follows a survivor")
    log(f"  failover with an etcd member gone: {time.time() - t:.2f} s")
    w = check_survivors(c, before["spi_i"], "combined")
    same_ike_sa(client, before)
    check(client.sa("home")["remote"]["addr"] == GW_PUBLIC[w], "the client is not on the claiming survivor")
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=15)


def run_stop(lab: Lab) -> None:
    c = start_cluster(lab)
    client, before = mobiked_on_gw1(c)
    c.nodes["gw1"].stop()
    wait_until(lambda: not c.etcd.get_prefix("/mobiked/sas/"), 10, "gw1's record deleted")
    wait_until(lambda: "gw1" not in [n["name"] for n in c.status("gw2")["nodes"]], 10, "gw2 sees gw1 gone")
    time.sleep(2)
    for w in SURVIVORS:
        f = c.status(w)["failover"]
        check(f["claimed"] == 0 and f["lost"] == 0 and f["failovers"] == 0, f"{w} after gw1's stop: {f}")
    wait_until(lambda: (s := client.sa("home")) is None or s["spi_i"] != before["spi_i"], 10,
               "the client's SA deleted by gw1")


def run_returns_late(lab: Lab) -> None:
    c = start_cluster(lab)
    client, before = mobiked_on_gw1(c)
    kill(c)
    w = wait_until(lambda: survivor(c), 20, "a survivor claims gw1's SA")
    wait_until(lambda: (s := client.sa("home")) and s["remote"]["addr"] == GW_PUBLIC[w], 20, f"the client follows {w}")
    revive(c, "gw1")
    start_node(c, "gw1")
    wait_until(lambda: len(c.status("gw1")["nodes"]) == 3, 15, "gw1 back in the cluster")
    time.sleep(2)
    f = c.status("gw1")["failover"]
    check(f["claimed"] == 0 and f["fenced"] == 0 and not c.sas_on("gw1"), f"the returned gw1: {f}, {c.sas_on('gw1')}")
    check(client.sa("home")["remote"]["addr"] == GW_PUBLIC[w], "the client left the survivor")
    same_ike_sa(client, before)
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=10)


def ike_requests_in(pcap: bytes):
    """(UDP payload, destination port) of each IKE request (non-ESP marker, message ID
    0, INFORMATIONAL) in a pcap of Ethernet frames."""
    import struct
    out = []
    at = 24
    while at + 16 <= len(pcap):
        incl = struct.unpack_from("<I", pcap, at + 8)[0]
        frame = pcap[at + 16:at + 16 + incl]
        at += 16 + incl
        if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00" or frame[14 + 9] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = frame[14 + ihl:]
        dport = struct.unpack_from(">H", udp, 2)[0]
        payload = udp[8:]
        if len(payload) < 4 + 28 or payload[:4] != b"\0\0\0\0":
            continue
        ike = payload[4:]
        exchange, flags, mid = ike[18], ike[19], struct.unpack_from(">I", ike, 20)[0]
        if exchange == 37 and not flags & 0x20 and mid == 0:
            out.append((payload, dport))
    return out


def run_replay(lab: Lab) -> None:
    from cluster_lab import NAT_OUTSIDE
    from netns import UdpProbe
    c = start_cluster(lab)
    client, before = mobiked_on_gw1(c)
    pcap = lab.dir / "router.pcap"
    dump = c.nat.spawn(["tcpdump", "-n", "-U", "--immediate-mode", "-i", "out0", "-w", str(pcap),
                        f"udp port 4500 and src host {GW_PUBLIC['gw1']}"], name="tcpdump-router")
    dump.wait_for_log("listening on", 10)
    kill(c)
    w = wait_until(lambda: survivor(c), 20, "a survivor claims gw1's SA")
    wait_until(lambda: (s := client.sa("home")) and s["remote"]["addr"] == GW_PUBLIC[w], 20, f"the client follows {w}")
    time.sleep(0.5)
    dump.stop()
    found = ike_requests_in(pcap.read_bytes())
    check(found, "no message-ID-0 INFORMATIONAL from gw1's address was captured")
    message, port = found[0]
    st0 = client.stats()
    check(st0["mid_sync"]["answered"] == 1, f"client stats before the replay: {st0}")
    # Sent again from gw1's address, from a machine on the routers' segment.
    c.wan.add_address("br0", "198.51.100.250/24")
    probe = UdpProbe(lab, c.wan, "198.51.100.250:4999")
    for data in (message, message[:-1] + bytes([message[-1] ^ 0x01])):
        r = probe.send_hex_nonlocal(f"{GW_PUBLIC['gw1']}:4500", f"{NAT_OUTSIDE}:{port}", data)
        check(r.startswith("sent"), f"udp_probe: {r}")
        time.sleep(0.5)
    st1 = client.stats()
    log(f"  replayed: retransmissions answered {st0['retransmits']['answered']} -> {st1['retransmits']['answered']}, "
        f"integrity drops {st0['dropped']['integrity']} -> {st1['dropped']['integrity']}")
    check(st1["mid_sync"]["answered"] == 1, f"the replayed synchronisation was applied again: {st1['mid_sync']}")
    check(st1["retransmits"]["answered"] == st0["retransmits"]["answered"] + 1,
          f"the exact replay was not answered as a retransmission: {st0['retransmits']} -> {st1['retransmits']}")
    check(st1["dropped"]["integrity"] == st0["dropped"]["integrity"] + 1,
          f"the altered message was not dropped for its integrity: {st0['dropped']} -> {st1['dropped']}")
    advanced = client.log_text().count("advanced by")
    check(advanced == 1, f"the client's outbound sequence numbers jumped {advanced} times")
    same_ike_sa(client, before)
    wait_ping(c.ini, CLIENT_INNER, HOST, timeout=10)


def test(lab: Lab) -> None:
    p = netns_param(PARAMS)
    {"mobiked": lambda: run_mobiked(lab), "strongswan": lambda: run_strongswan(lab),
     "many": lambda: run_many(lab), "survivor_dies": lambda: run_survivor_dies(lab),
     "returns": lambda: run_returns(lab), "etcd_member": lambda: run_etcd_member(lab),
     "stop": lambda: run_stop(lab), "returns_late": lambda: run_returns_late(lab),
     "replay": lambda: run_replay(lab)}[p]()


if __name__ == "__main__":
    run_test(test, f"cluster failover: {netns_param(PARAMS)}", requires=requires, timeout=150)
