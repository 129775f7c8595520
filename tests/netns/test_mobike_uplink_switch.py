#!/usr/bin/env python3
"""MOBIKE scenario 2 (mobiked <-> mobiked): the initiator moves from one uplink (behind
NAT A) to another (behind NAT B) and its old interface goes away. mobiked notices the
address change by itself (rtnetlink) and sends UPDATE_SA_ADDRESSES over the new path:
same SPIs, the responder now sees NAT B, and a 10 ms ping through the tunnel resumes.

    ini eth0 10.1.0.2 -- natA (198.51.100.2) --+
                                               +-- wan bridge -- res 198.51.100.10
    ini eth1 10.2.0.2 -- natB (198.51.100.3) --+
"""

import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Lab, check, find_binary, log, require_commands, require_netns, run_test,  # noqa: E402
                   setup_nat, wait_until)

INI_INNER, RES_INNER = "192.0.2.1", "203.0.113.1"


def topology(lab: Lab):
    ini, nata, natb, wan, res = (lab.namespace(r) for r in ("ini", "nata", "natb", "wan", "res"))
    lab.veth(ini, "eth0", nata, "in0")
    lab.veth(ini, "eth1", natb, "in0")
    lab.veth(nata, "out0", wan, "pa")
    lab.veth(natb, "out0", wan, "pb")
    lab.veth(res, "eth0", wan, "pr")
    wan.ip("link", "add", "br0", "type", "bridge")
    for dev in ("pa", "pb", "pr"):
        wan.ip("link", "set", dev, "master", "br0")
    wan.link_up("br0")
    ini.add_address("eth0", "10.1.0.2/24")
    ini.add_address("eth1", "10.2.0.2/24")
    ini.add_address("lo", INI_INNER + "/32")
    ini.ip("route", "add", "default", "via", "10.1.0.1", "metric", "100")
    ini.ip("route", "add", "default", "via", "10.2.0.1", "metric", "200")
    for nat, inside, outside in ((nata, "10.1.0.1/24", "198.51.100.2/24"), (natb, "10.2.0.1/24", "198.51.100.3/24")):
        nat.add_address("in0", inside)
        nat.add_address("out0", outside)
        setup_nat(nat, inside.rsplit(".", 1)[0] + ".0/24", "out0", "in0")
    res.add_address("eth0", "198.51.100.10/24")
    res.add_address("lo", RES_INNER + "/32")
    return ini, res


def test(lab: Lab) -> None:
    ini, res = topology(lab)
    gw = Mobiked(lab, res, "gateway", dataplane="userspace").start([MConn(
        "c", local_id="gw@mobike.test", remote_id=None, remote_addrs=["%any"],
        local_ts=[RES_INNER + "/32"], remote_ts=[INI_INNER + "/32"], dpd_delay="2s")])
    cl = Mobiked(lab, ini, "client", dataplane="userspace").start([MConn(
        "c", local_id="cl@mobike.test", remote_id="gw@mobike.test", remote_addrs=["198.51.100.10"],
        local_ts=[INI_INNER + "/32"], remote_ts=[RES_INNER + "/32"], dpd_delay="2s")])
    cl.ctl("initiate", "c")
    before = cl.established("c")
    gw_before = gw.established("c")
    check(before["local"]["addr"] == "10.1.0.2" and gw_before["remote"]["addr"] == "198.51.100.2",
          f"not on uplink A at first: {before['local']} / {gw_before['remote']}")

    pinger = ini.spawn(["ping", "-n", "-D", "-i", "0.01", "-c", "600", "-I", INI_INNER, RES_INNER], name="ping")
    time.sleep(1.5)
    t0 = time.monotonic()
    ini.ip("link", "del", "eth0")  # uplink A is gone, with its address
    wait_until(lambda: (gw.sa("c") or {}).get("remote", {}).get("addr") == "198.51.100.3", 10,
               "the gateway to see the client behind NAT B")
    log(f"moved {time.monotonic() - t0:.3f}s after the interface went away")
    pinger.wait(30)
    after = cl.established("c")
    gw_after = gw.established("c")
    check(after["spi_i"] == before["spi_i"] and after["spi_r"] == before["spi_r"], "the IKE SA was re-keyed")
    check(after["children"][0]["spi_in"] == before["children"][0]["spi_in"], "the Child SA was re-keyed")
    check(after["local"]["addr"] == "10.2.0.2" and after["nat_local"], f"client not on uplink B: {after}")
    check(gw_after["remote"] == {"addr": "198.51.100.3", "port": 4500}, f"gateway view: {gw_after['remote']}")
    check(cl.stats()["automatic_moves"] >= 1, "the move was not automatic")
    out = pinger.log_text()
    times = [float(m) for m in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", out, re.M)]
    check(len(times) > 100, f"too few ping replies:\n{out[-600:]}")
    gap = max(b - a for a, b in zip(times, times[1:]))
    tail_ok = times[-1] > times[0] + 4.0
    log(f"ping: {len(times)} of 600 replies, longest gap {gap * 1000:.0f} ms")
    check(tail_ok, "traffic did not resume after the move")


def requires():
    require_netns()
    require_commands("iptables", "ping")
    find_binary("mobiked")


if __name__ == "__main__":
    run_test(test, "MOBIKE: initiator switches uplinks (NAT A -> NAT B)", requires=requires)
