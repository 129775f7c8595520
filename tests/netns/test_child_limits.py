#!/usr/bin/env python3
"""Child SA volume limits (rekey_bytes / life_bytes, rekey_packets / life_packets, as
swanctl.conf names them) enforced by the data plane and acted on by the engine, between
two mobiked through the MASQUERADE NAT:

    ini (10.1.0.2, inner 192.0.2.1) -- nat -- res (198.51.100.10, inner 203.0.113.1)

netns-params: rekey hard
netns-uml: yes

The data plane is the userspace one on the host and the kernel's (dataplane = "xfrm",
its SA lifetimes and XFRM_MSG_EXPIRE) inside user-mode-linux (uml.child_limits.*).

rekey: the initiator's child has rekey_packets 400 and rekey_bytes 300K (hard limits far
above). A 10 ms ping alone passes the packet limit every ~4 s: at least two rekeys
reported as "packets"; then iperf3 at 4 Mbit/s for 2 s moves ~1 MB: at least two more
reported as "bytes". Each rekey replaces the Child SA (new SPIs at both ends, one Child
SA left), and the ping loses nothing through any of them.

hard: the initiator's child has only life_packets 300 (no soft limit, so no rekey); the
10 ms ping passes it after ~3 s: the data plane stops the SA, the initiator deletes the
Child SA at both ends (the IKE SA stays), and the ping stops getting replies. With xfrm
the kernel holds none of the Child SA's SAs afterwards. The client's metrics still count
the gone SAs' packets, once: at least the replies, at most the limit, each way.
"""

import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Lab, check, find_binary, in_uml, log, netns_param, require_commands,  # noqa: E402
                   require_netns, run_test, wait_until, xfrm_states)
from scenario import Ping  # noqa: E402
from test_metrics import scrape, value  # noqa: E402
from topology import INI_INNER, RES_INNER, nat_topology  # noqa: E402

PARAMS = ("rekey", "hard")
METRICS = "127.0.0.1:9560"


def installed(sa: dict | None) -> list[dict]:
    return [c for c in (sa or {}).get("children", []) if c["state"] == "INSTALLED"]


def pair(lab: Lab, child_extra: dict, client_extra: str = ""):
    t = nat_topology(lab)
    dataplane = "xfrm" if in_uml() else "userspace"
    conn = dict(psk="mobike-test-psk-0123456789", dpd_delay="120s", ike_proposals="aes128gcm16-prfsha256-x25519",
                esp_proposals="aes128gcm16")
    gw = Mobiked(lab, t.res, "gateway", dataplane=dataplane).start([MConn(
        "clients", local_id="gw.mobike.test", remote_id=None, remote_addrs=["%any"], local_ts=[RES_INNER + "/32"],
        remote_ts=[INI_INNER + "/32"], **conn)])
    cl = Mobiked(lab, t.ini, "client", dataplane=dataplane, daemon_extra=client_extra).start([MConn(
        "office", local_id="client.mobike.test", remote_id="gw.mobike.test", remote_addrs=[t.RES_ADDR],
        local_ts=[INI_INNER + "/32"], remote_ts=[RES_INNER + "/32"], child_extra=child_extra, **conn)])
    cl.ctl("initiate", "office")
    gw.established("clients")
    cl.established("office")
    log(f"established with dataplane = {dataplane!r}, client child limits {child_extra}")
    return t, gw, cl, dataplane


def lost(ping: Ping) -> list[int]:
    seqs = sorted({s for _, s in ping.replies()})
    check(len(seqs) > 100, f"the ping got too few replies: {len(seqs)}")
    return sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))


def soft_expires(cl: Mobiked, cause: str) -> int:
    return cl.log_text().count(f"reached its soft limit ({cause}): rekeying")


def rekey(lab: Lab) -> None:
    t, gw, cl, dataplane = pair(lab, {"rekey_packets": 400, "life_packets": 100000,
                                      "rekey_bytes": "300K", "life_bytes": "100M"})
    first = installed(cl.sa("office"))[0]
    ping = Ping(t.ini)
    wait_until(lambda: soft_expires(cl, "packets") >= 2 or None, 30, "two rekeys on the packet limit")
    # Bytes: iperf3 at 4 Mbit/s, ~1 MB.
    server = t.res.spawn(["iperf3", "-s", "-1", "-B", RES_INNER], name="iperf3-server")
    time.sleep(0.5)
    r = t.ini.run(["iperf3", "-c", RES_INNER, "-B", INI_INNER, "-t", "2", "-b", "4M"], check=False, timeout=60)
    check(r.returncode == 0, f"iperf3 failed: {r.stdout[-1500:]}{r.stderr}")
    server.wait(10)
    wait_until(lambda: soft_expires(cl, "bytes") >= 2 or None, 15, "two rekeys on the byte limit")
    time.sleep(1.0)
    ping.stop()
    missing = lost(ping)
    sa_c, sa_g = cl.sa("office"), gw.sa("clients")
    kids_c, kids_g = installed(sa_c), installed(sa_g)
    wait_until(lambda: len(installed(cl.sa("office"))) == 1 and len(installed(gw.sa("clients"))) == 1 or None, 10,
               "one Child SA left at each end")
    kids_c, kids_g = installed(cl.sa("office")), installed(gw.sa("clients"))
    check(kids_c[0]["spi_in"] != first["spi_in"] and kids_c[0]["spi_out"] != first["spi_out"],
          f"the Child SA was not replaced: {first} -> {kids_c[0]}")
    check(kids_c[0]["spi_in"] == kids_g[0]["spi_out"] and kids_c[0]["spi_out"] == kids_g[0]["spi_in"],
          f"the ends disagree on the Child SA: {kids_c[0]} / {kids_g[0]}")
    st = cl.stats()
    check(st["child"]["soft_expired"] >= 4, f"the client reports {st['child']} (4 rekeys or more expected)")
    check(st["ike"]["established"] == 1 and gw.stats()["ike"]["established"] == 1, "an IKE SA was re-established")
    if dataplane == "xfrm":
        check(st["dataplane"]["expires"]["soft"] >= 4, f"the kernel reported {st['dataplane']['expires']}")
        spis = {s["spi"] for s in xfrm_states(t.ini)}
        check(spis == {kids_c[0]["spi_in"].lower(), kids_c[0]["spi_out"].lower()},
              f"the client's kernel holds {spis}, not the one Child SA's two SAs")
    check(not missing, f"pings lost across the rekeys: {missing}")
    log(f"{soft_expires(cl, 'packets')} rekeys on packets, {soft_expires(cl, 'bytes')} on bytes "
        f"({st['child']['soft_expired']} in all); no ping lost; Child SA {first['spi_in']} -> {kids_c[0]['spi_in']}")


def hard(lab: Lab) -> None:
    t, gw, cl, dataplane = pair(lab, {"life_packets": 300}, client_extra=f'metrics = "{METRICS}"\n')
    ping = Ping(t.ini)
    wait_until(lambda: not installed(cl.sa("office")) and not installed(gw.sa("clients")) or None, 30,
               "the Child SA deleted at both ends after its hard packet limit")
    t_gone = time.time()
    time.sleep(1.0)
    ping.stop()
    replies = ping.replies()
    check(150 <= len(replies) <= 300, f"{len(replies)} ping replies: the SA should carry up to 300 packets each way")
    check(not [x for x, _ in replies if x > t_gone], "ping replies after the Child SA was deleted")
    st = cl.stats()
    check(st["child"]["hard_expired"] == 1, f"the client reports {st['child']}")
    check(st["child"]["soft_expired"] == 0, f"a soft limit was reported without one: {st['child']}")
    for p in (cl, gw):
        sa = p.sa("office" if p is cl else "clients")
        check(sa and sa["state"] == "ESTABLISHED", f"{p.name}: the IKE SA did not stay: {sa}")
    if dataplane == "xfrm":
        check(st["dataplane"]["expires"]["hard"] >= 1, f"the kernel reported {st['dataplane']['expires']}")
        for ns in (t.ini, t.res):
            check(not xfrm_states(ns), f"{ns.name}: the kernel still holds {xfrm_states(ns)}")
    else:
        check(st["dataplane"]["child_sas"] == 0, f"the client's data plane: {st['dataplane']}")
    # The metrics keep the deleted SAs' traffic, counted once: with xfrm the outbound SA's
    # last counters came with the kernel's hard expire (the kernel deleted it), the
    # inbound one's from the read right before mobiked deleted it.
    m = scrape(t.ini, METRICS)
    sent = int(value(m, "mobiked_dataplane_packets_total", direction="out"))
    got = int(value(m, "mobiked_dataplane_packets_total", direction="in"))
    check(len(replies) <= sent <= 300 and len(replies) <= got <= 300,
          f"the metrics say {sent} packets out, {got} in, for {len(replies)} replies under a 300-packet limit")
    log(f"hard limit: {len(replies)} replies, then the Child SA was deleted at both ends; the IKE SA stays; "
        f"metrics {sent} packets out, {got} in")


def requires():
    require_netns()
    require_commands("iptables", "ping", "iperf3")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    which = netns_param(PARAMS)
    run_test(rekey if which == "rekey" else hard, f"Child SA limits: {which}", timeout=150, requires=requires)
