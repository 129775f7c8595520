#!/usr/bin/env python3
"""dataplane = "xfrm" and the metrics endpoint: the kernel's ESP traffic and drops as
mobiked_dataplane_packets_total / _bytes_total / _drops_total.

netns-uml: only

    ini (10.1.0.2, inner 192.0.2.1) -- nat -- res (198.51.100.10, inner 203.0.113.1)

Two mobiked with the kernel data plane, each with its metrics endpoint. The client
pings the gateway's inner address through the tunnel, and both endpoints are scraped:
the client's packets out/in are at least the pings sent and answered, its bytes at least
their inner size, and they equal the kernel's own SA counters (`ip -s xfrm state`). Then
the Child SA is rekeyed (`mobikectl rekey --child`), the old SAs are deleted by mobiked
(the kernel forgets their counters with them), and the client pings again: the totals
now hold both rounds, i.e. more than the new SAs' kernel counters by at least what the
old SAs carried. A fake ESP-in-UDP packet with an unknown SPI sent to the gateway's
NAT-T port shows up as a drop with reason "unknown SPI" (/proc/net/xfrm_stat's
XfrmInNoStates).

Only under user-mode-linux (tests/uml/uml_run.py): the host kernels here have no ESP.
"""

import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Lab, Skip, check, find_binary, in_uml, log, no_kernel_esp, require_commands,  # noqa: E402
                   require_netns, run_test, wait_until, xfrm_states)
from test_metrics import get, scrape, value  # noqa: E402
from topology import nat_topology  # noqa: E402

METRICS = "127.0.0.1:9560"
ICMP_ECHO = 84  # inner IPv4 packet of a default ping: 20 + 8 + 56 octets

INJECT = r'''
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(bytes.fromhex(sys.argv[3]), (sys.argv[1], int(sys.argv[2])))
'''
FAKE_ESP = "deadbeef00000001" + "00" * 32  # SPI 0xdeadbeef, sequence 1: no such SA


def requires():
    require_netns()
    require_commands("iptables", "ping")
    find_binary("mobiked")
    find_binary("mobikectl")


def installed_child(d: Mobiked, name: str) -> dict:
    sa = d.established(name)
    return [c for c in sa["children"] if c["state"] == "INSTALLED"][0]


def dataplane(m: dict) -> dict:
    """packets_in/out, bytes_in/out of a scrape."""
    return {f"{kind}_{d}": int(value(m, f"mobiked_dataplane_{kind}_total", direction=d))
            for kind in ("packets", "bytes") for d in ("in", "out")}


def kernel_counts(ns, child: dict) -> dict:
    sas = {sa["spi"]: sa for sa in xfrm_states(ns)}
    out, inb = sas.get(child["spi_out"]), sas.get(child["spi_in"])
    check(out is not None and inb is not None, f"the kernel lacks the Child SA's SAs: {child} {list(sas)}")
    return {"packets_in": inb["packets"], "packets_out": out["packets"],
            "bytes_in": inb["bytes"], "bytes_out": out["bytes"]}


def ping(t, count: int) -> None:
    r = t.ini.run(["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2", "-I", t.INI_INNER, t.RES_INNER],
                  check=False, timeout=60)
    check(r.returncode == 0 and f"{count} received" in r.stdout,
          f"ping through the kernel's tunnel lost packets:\n{r.stdout}{r.stderr}")


def test(lab: Lab) -> None:
    if not in_uml():
        raise Skip("needs a kernel with ESP: run as uml.xfrm_metrics")
    t = nat_topology(lab)
    extra = f'metrics = "{METRICS}"\n'
    gw = Mobiked(lab, t.res, "gateway", dataplane="xfrm", daemon_extra=extra).start(
        [MConn("clients", local_id="gw@mobike.test", remote_id=None, remote_addrs=["%any"],
               local_ts=[t.RES_INNER + "/32"], remote_ts=[t.INI_INNER + "/32"])])
    cl = Mobiked(lab, t.ini, "client", dataplane="xfrm", daemon_extra=extra).start(
        [MConn("office", local_id="client@mobike.test", remote_id="gw@mobike.test", remote_addrs=[t.RES_ADDR],
               local_ts=[t.INI_INNER + "/32"], remote_ts=[t.RES_INNER + "/32"])])

    # Before any SA: the families are there, at zero, and say where they come from.
    body = get(t.ini, f"http://{METRICS}/metrics")["body"]
    for family in ("packets", "bytes", "drops"):
        check(f"# HELP mobiked_dataplane_{family}_total " in body and "(xfrm: " in body.split(
            f"# HELP mobiked_dataplane_{family}_total ")[1].split("\n")[0],
            f"the HELP of mobiked_dataplane_{family}_total does not name the kernel as its source")
    m0 = dataplane(scrape(t.ini, METRICS))
    check(m0 == {"packets_in": 0, "packets_out": 0, "bytes_in": 0, "bytes_out": 0}, f"traffic before any SA: {m0}")

    cl.ctl("initiate", "office")
    cl.established("office")
    gw.established("clients")
    dp = cl.stats()["dataplane"]
    if dp["install_errors"]:
        no_kernel_esp(f"the kernel refused the Child SA: {dp['last_error']}")
    # The backend installs no routes: the gateway needs one towards the client's inner
    # address for the reply to meet the out policy.
    t.res.ip("route", "add", t.INI_INNER + "/32", "via", t.NAT_OUTSIDE, "src", t.RES_INNER)

    first = 5
    ping(t, first)
    before = installed_child(cl, "office")
    m1 = dataplane(scrape(t.ini, METRICS))
    k1 = kernel_counts(t.ini, before)
    log(f"after {first} pings: metrics {m1}, kernel {k1}")
    check(m1["packets_out"] >= first and m1["packets_in"] >= first, f"pings missing from the metrics: {m1}")
    check(m1["bytes_out"] >= first * ICMP_ECHO and m1["bytes_in"] >= first * ICMP_ECHO,
          f"bytes below the pings' inner size: {m1}")
    check(m1 == k1, f"the metrics are not the kernel's SA counters: {m1} vs {k1}")
    g1 = dataplane(scrape(t.res, METRICS))
    check(g1["packets_in"] >= first and g1["packets_out"] >= first, f"the gateway's metrics miss the pings: {g1}")

    # Rekey: new SAs, the old ones deleted by mobiked on both sides.
    cl.ctl("rekey", "--child", str(before["id"]))
    wait_until(lambda: installed_child(cl, "office")["spi_in"] != before["spi_in"]
               and len(cl.sa("office")["children"]) == 1 and len(gw.sa("clients")["children"]) == 1, 15,
               "the rekeyed Child SA's predecessor to be deleted on both sides")
    after = installed_child(cl, "office")
    spis = {sa["spi"] for sa in xfrm_states(t.ini)}
    check(before["spi_in"] not in spis and before["spi_out"] not in spis,
          f"the old SAs are still in the kernel: {spis} (old {before['spi_in']}/{before['spi_out']})")
    m2 = dataplane(scrape(t.ini, METRICS))
    check(all(m2[k] >= m1[k] for k in m1), f"the totals went down with the old SAs: {m1} -> {m2}")

    second = 7
    ping(t, second)
    m3 = dataplane(scrape(t.ini, METRICS))
    k3 = kernel_counts(t.ini, after)
    log(f"after the rekey and {second} more pings: metrics {m3}, kernel's new SAs {k3}")
    check(m3["packets_out"] >= first + second and m3["packets_in"] >= first + second,
          f"packets of both rounds missing: {m3}")
    check(m3["bytes_out"] >= (first + second) * ICMP_ECHO and m3["bytes_in"] >= (first + second) * ICMP_ECHO,
          f"bytes of both rounds missing: {m3}")
    for k in m3:
        # The old SAs' share: at least what they had at the first scrape.
        check(m3[k] >= k3[k] + m1[k], f"{k}: the old SAs' counts were not kept: {m3[k]} < {k3[k]} + {m1[k]}")
    g3 = dataplane(scrape(t.res, METRICS))
    check(g3["packets_in"] >= first + second and g3["packets_out"] >= first + second,
          f"the gateway's totals miss a round: {g3}")

    # Drops: the namespace's XFRM statistics.
    gm = scrape(t.res, METRICS)
    spi_drops = value(gm, "mobiked_dataplane_drops_total", reason="unknown SPI")
    t.nat.run(["/usr/bin/python3", "-c", INJECT, t.RES_ADDR, "4500", FAKE_ESP], timeout=30)
    wait_until(lambda: value(scrape(t.res, METRICS), "mobiked_dataplane_drops_total", reason="unknown SPI")
               > spi_drops, 30, "the gateway's metrics to count the ESP packet with an unknown SPI")
    log(f"drop of an unknown SPI counted (was {spi_drops:.0f})")

    cl.stop()
    gw.stop()


if __name__ == "__main__":
    run_test(test, "xfrm data plane: traffic and drops in the metrics, across a rekey", requires=requires,
             timeout=280)
