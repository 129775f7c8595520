#!/usr/bin/env python3
"""ESP between mobiked's userspace data plane and strongSwan (charon, kernel-libipsec)
through the NAT, in both roles: ping and a bulk TCP transfer through the tunnel, and
each peer's own counters show the other's packets decrypted.
"""

import json
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Charon, Conn, Lab, check, child_sas, established, find_binary, log,  # noqa: E402
                   require_commands, require_netns, require_strongswan, run_test)
from topology import nat_topology  # noqa: E402

NAME = "tunnel"


def one_role(lab: Lab, mobiked_initiates: bool) -> None:
    t = nat_topology(lab)
    m_ns, s_ns = (t.ini, t.res) if mobiked_initiates else (t.res, t.ini)
    m_inner, s_inner = (t.INI_INNER, t.RES_INNER) if mobiked_initiates else (t.RES_INNER, t.INI_INNER)
    charon = Charon(lab, s_ns).start()
    charon.load([Conn(NAME, local_id="swan@mobike.test", remote_id="mobiked@mobike.test",
                      local_addrs=[t.RES_ADDR if mobiked_initiates else t.INI_ADDR],
                      remote_addrs=[] if mobiked_initiates else [t.RES_ADDR],
                      local_ts=[s_inner + "/32"], remote_ts=[m_inner + "/32"])])
    d = Mobiked(lab, m_ns, dataplane="userspace").start([MConn(
        NAME, local_id="mobiked@mobike.test", remote_id="swan@mobike.test",
        remote_addrs=[t.RES_ADDR] if mobiked_initiates else ["%any"],
        local_ts=[m_inner + "/32"], remote_ts=[s_inner + "/32"])])
    if mobiked_initiates:
        d.ctl("initiate", NAME)
    else:
        charon.initiate(child=NAME)
    d.established(NAME)
    established(charon, NAME)

    r = m_ns.run(["ping", "-n", "-q", "-c", "5", "-i", "0.2", "-W", "2", "-I", m_inner, s_inner],
                 check=False, timeout=30)
    check(r.returncode == 0, f"ping from mobiked's side failed:\n{r.stdout}{r.stderr}")
    r = s_ns.run(["ping", "-n", "-q", "-c", "5", "-i", "0.2", "-W", "2", "-I", s_inner, m_inner],
                 check=False, timeout=30)
    check(r.returncode == 0, f"ping from strongSwan's side failed:\n{r.stdout}{r.stderr}")

    server = s_ns.spawn(["iperf3", "-s", "-1", "-B", s_inner], name="iperf3-server")
    time.sleep(0.5)
    r = m_ns.run(["iperf3", "-c", s_inner, "-B", m_inner, "-t", "2", "-J"], check=False, timeout=60)
    check(r.returncode == 0, f"iperf3 through the tunnel failed: {r.stdout[-1500:]}{r.stderr}")
    moved = json.loads(r.stdout)["end"]["sum_received"]["bytes"]
    server.wait(10)

    mc = [c for c in d.sa(NAME)["children"] if c["state"] == "INSTALLED"][0]
    sc = child_sas(charon.list_sas()[NAME])[0]
    log(f"{'mobiked' if mobiked_initiates else 'strongSwan'} initiated: iperf3 moved {moved} bytes; "
        f"mobiked out {mc['packets_out']}p/{mc['bytes_out']}B in {mc['packets_in']}p/{mc['bytes_in']}B; "
        f"charon in {sc.get('packets-in')}p/{sc.get('bytes-in')}B out {sc.get('packets-out')}p/{sc.get('bytes-out')}B")
    check(int(sc.get("packets-in", 0)) >= 10 and int(sc.get("bytes-in", 0)) >= moved,
          f"charon did not decrypt mobiked's packets: {sc}")
    check(mc["packets_in"] >= 10 and mc["bytes_in"] > 0, f"mobiked did not decrypt charon's packets: {mc}")
    check(mc["spi_out"] == sc["spi-in"] and mc["spi_in"] == sc["spi-out"], f"SPIs differ: {mc} vs {sc}")
    check(not mc.get("drops"), f"mobiked dropped packets: {mc.get('drops')}")


def test(lab: Lab) -> None:
    one_role(lab, mobiked_initiates=True)
    with Lab() as second:
        one_role(second, mobiked_initiates=False)


def requires():
    require_netns()
    require_strongswan()
    require_commands("iptables", "ping", "iperf3")
    find_binary("mobiked")


if __name__ == "__main__":
    run_test(test, "userspace ESP interop with strongSwan, both roles", requires=requires)
