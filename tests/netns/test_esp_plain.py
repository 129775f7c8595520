#!/usr/bin/env python3
"""Plain ESP (IP protocol 50, no UDP encapsulation) between two mobiked without a NAT,
with IPv4 and IPv6 inner traffic in one Child SA, over an IPv4 and then an IPv6 outer
path: the packets on the wire are ESP, ping works in both inner families, and each side
counts what the other sent.

    ini 198.51.100.1 | 2001:db8:100::1 (inner 192.0.2.1, 2001:db8:1::1) == veth ==
    res 198.51.100.10 | 2001:db8:100::10 (inner 203.0.113.1, 2001:db8:2::1)

netns-uml: yes

On the host the userspace data plane carries it; inside user-mode-linux (uml.esp_plain)
the kernel's (dataplane = "xfrm"): both inner families through one pair of kernel SAs
over IPv4 and over IPv6, not encapsulated, with the kernel's counters.
"""

import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Lab, check, find_binary, in_uml, log, require_commands, require_netns, run_test,  # noqa: E402
                   xfrm_states)


def test(lab: Lab) -> None:
    one_path(lab, "198.51.100.1/24", "198.51.100.10")
    with Lab() as second:
        one_path(second, "2001:db8:100::1/64", "2001:db8:100::10")


def one_path(lab: Lab, ini_outer: str, res_outer: str) -> None:
    ini, res = lab.namespace("ini"), lab.namespace("res")
    lab.veth(ini, "eth0", res, "eth0")
    ini.add_address("eth0", ini_outer)
    res.add_address("eth0", res_outer + ("/64" if ":" in res_outer else "/24"))
    for ns, v4, v6 in ((ini, "192.0.2.1/32", "2001:db8:1::1/128"), (res, "203.0.113.1/32", "2001:db8:2::1/128")):
        ns.add_address("lo", v4)
        ns.add_address("lo", v6)
    dataplane = "xfrm" if in_uml() else "userspace"
    gw = Mobiked(lab, res, "gateway", dataplane=dataplane).start([MConn(
        "c", local_id="gw@mobike.test", remote_id=None, remote_addrs=["%any"],
        local_ts=["203.0.113.1/32", "2001:db8:2::1/128"], remote_ts=["192.0.2.1/32", "2001:db8:1::1/128"])])
    cl = Mobiked(lab, ini, "client", dataplane=dataplane).start([MConn(
        "c", local_id="cl@mobike.test", remote_id="gw@mobike.test", remote_addrs=[res_outer],
        local_ts=["192.0.2.1/32", "2001:db8:1::1/128"], remote_ts=["203.0.113.1/32", "2001:db8:2::1/128"])])
    cl.ctl("initiate", "c")
    sa = cl.established("c")
    gw.established("c")
    check(not sa["nat_local"] and not sa["nat_remote"], f"a NAT was detected without one: {sa}")

    dump = res.spawn(["tcpdump", "-i", "eth0", "-n", "-U", "-c", "4", "esp"], name="tcpdump-esp")
    time.sleep(1)
    r = ini.run(["ping", "-n", "-q", "-c", "4", "-i", "0.2", "-W", "2", "-I", "192.0.2.1", "203.0.113.1"],
                check=False, timeout=30)
    check(r.returncode == 0, f"IPv4 ping over plain ESP failed:\n{r.stdout}{r.stderr}\n{cl.stats()['dataplane']}")
    dump.wait(10)
    check("ESP(spi=0x" in dump.log_text(), f"no ESP packets on the wire:\n{dump.log_text()[-800:]}")
    r = ini.run(["ping", "-6", "-n", "-q", "-c", "4", "-i", "0.2", "-W", "2", "-I", "2001:db8:1::1", "2001:db8:2::1"],
                check=False, timeout=30)
    check(r.returncode == 0, f"IPv6 ping over plain ESP failed:\n{r.stdout}{r.stderr}")
    c = [c for c in cl.sa("c")["children"] if c["state"] == "INSTALLED"][0]
    g = [c for c in gw.sa("c")["children"] if c["state"] == "INSTALLED"][0]
    check(c["packets_out"] >= 8 and g["packets_in"] == c["packets_out"], f"counters disagree: {c} vs {g}")
    if dataplane == "xfrm":
        # The kernel's two SAs at each end, between the outer addresses, not encapsulated.
        outer = {res_outer, ini_outer.split("/")[0]}
        for ns in (ini, res):
            sas = xfrm_states(ns)
            check(len(sas) == 2 and all({sa["src"], sa["dst"]} == outer and sa["sport"] is None for sa in sas),
                  f"{ns.role}: the kernel's SAs are not plain ESP between {outer}: {sas}")
            check(all(sa["packets"] >= 8 for sa in sas), f"{ns.role}: the kernel's SAs carried too little: {sas}")
        log(f"plain ESP over {res_outer} in the kernel: client out {c['packets_out']}p in {c['packets_in']}p; "
            f"gateway in {g['packets_in']}p")
    else:
        log(f"plain ESP over {res_outer}: client out {c['packets_out']}p in {c['packets_in']}p; "
            f"gateway in {g['packets_in']}p; raw ESP received by the gateway: {gw.stats()['dataplane']['esp_raw_in']}")
        check(gw.stats()["dataplane"]["esp_raw_in"] >= 8, "the gateway did not receive plain ESP")
        check(gw.stats()["dataplane"]["esp_udp_in"] == 0, "ESP came UDP-encapsulated without a NAT")


def requires():
    require_netns()
    require_commands("ping", "tcpdump")
    find_binary("mobiked")


if __name__ == "__main__":
    run_test(test, "plain ESP, IPv4 and IPv6 inner", requires=requires)
