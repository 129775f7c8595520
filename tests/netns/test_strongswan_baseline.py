#!/usr/bin/env python3
"""Proves the harness: strongSwan behind a MASQUERADE NAT establishes with strongSwan,
both sides see the NAT, and inner traffic flows through the kernel-libipsec tunnel.

    ini (10.1.0.2) -- nat (10.1.0.1 | 198.51.100.2) -- res (198.51.100.10)
    tunnel: 192.0.2.1/32 (ini, on lo) <-> 203.0.113.1/32 (res, on lo)
"""

import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from netns import (Charon, Conn, Lab, check, child_sas, established, log, require_commands,  # noqa: E402
                   require_netns, require_strongswan, run_test, wait_until)
from topology import nat_topology  # noqa: E402

IKE = "baseline"


def ping(ns, src, dst, count=3):
    return ns.run(["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2", "-I", src, dst],
                  check=False, timeout=30)


def test(lab: Lab) -> None:
    t = nat_topology(lab)

    # Without the tunnel the inner addresses are unreachable (the NAT has no route to
    # 203.0.113.0/24), so a ping that succeeds later went through the tunnel.
    r = ping(t.ini, t.INI_INNER, t.RES_INNER, count=1)
    check(r.returncode != 0, "inner address reachable before any tunnel: topology is wrong")

    ini = Charon(lab, t.ini).start()
    res = Charon(lab, t.res).start()
    ini.load([Conn(IKE, local_id="ini@mobike.test", remote_id="res@mobike.test",
                   local_addrs=[t.INI_ADDR], remote_addrs=[t.RES_ADDR],
                   local_ts=[t.INI_INNER + "/32"], remote_ts=[t.RES_INNER + "/32"],
                   mobike=True, dpd_delay=30)])
    res.load([Conn(IKE, local_id="res@mobike.test", remote_id="ini@mobike.test",
                   local_addrs=[t.RES_ADDR],
                   local_ts=[t.RES_INNER + "/32"], remote_ts=[t.INI_INNER + "/32"],
                   mobike=True, dpd_delay=30)])

    t0 = time.monotonic()
    ini.initiate(child=IKE)
    ini_sa = established(ini, IKE)
    res_sa = established(res, IKE)
    log(f"established in {time.monotonic() - t0:.2f}s")

    # Initiator: behind the NAT, floated to 4500.
    check(ini_sa.get("local-host") == t.INI_ADDR, f"ini local-host {ini_sa.get('local-host')}")
    check(ini_sa.get("remote-host") == t.RES_ADDR, f"ini remote-host {ini_sa.get('remote-host')}")
    check(ini_sa.get("nat-local") == "yes", f"ini did not detect its NAT: {ini_sa}")
    # kernel-libipsec needs UDP encapsulation, so charon sends a faked NATD_S_IP and each
    # side believes the *peer* is behind a NAT (nat-remote); the receiver's own NAT
    # (nat-local, from NATD_D_IP) is a real measurement: only ini is behind one.
    check(ini_sa.get("local-port") == "4500" and ini_sa.get("remote-port") == "4500",
          f"no NAT-T port float: {ini_sa.get('local-port')} -> {ini_sa.get('remote-port')}")
    # Responder: sees the NAT's public address as the peer.
    check(res_sa.get("remote-host") == t.NAT_OUTSIDE,
          f"res remote-host {res_sa.get('remote-host')}, expected the NAT {t.NAT_OUTSIDE}")
    check(res_sa.get("nat-remote") == "yes", f"res did not detect the peer's NAT: {res_sa}")
    check(res_sa.get("nat-local") != "yes", f"res thinks it is behind a NAT: {res_sa}")
    for side, sa in (("ini", ini_sa), ("res", res_sa)):
        check(sa.get("encr-alg") == "AES_GCM_16" and sa.get("encr-keysize") == "128",
              f"{side} IKE cipher {sa.get('encr-alg')}/{sa.get('encr-keysize')}")
        check(sa.get("prf-alg") == "PRF_HMAC_SHA2_256", f"{side} prf {sa.get('prf-alg')}")
        check(sa.get("dh-group") == "CURVE_25519", f"{side} dh {sa.get('dh-group')}")
        child = child_sas(sa)[0]
        check(child.get("encap") == "yes", f"{side} CHILD_SA not UDP-encapsulated: {child}")
        check(child.get("encr-alg") == "AES_GCM_16", f"{side} ESP cipher {child.get('encr-alg')}")
    ini_child = child_sas(ini_sa)[0]
    check(ini_child.get("local-ts") == [t.INI_INNER + "/32"] and
          ini_child.get("remote-ts") == [t.RES_INNER + "/32"],
          f"ini traffic selectors {ini_child.get('local-ts')} === {ini_child.get('remote-ts')}")

    r = ping(t.ini, t.INI_INNER, t.RES_INNER, count=3)
    check(r.returncode == 0, f"ping through the tunnel failed:\n{r.stdout}{r.stderr}")

    ini_child = child_sas(ini.list_sas()[IKE])[0]
    res_child = child_sas(res.list_sas()[IKE])[0]
    log(f"ini child counters: out {ini_child.get('bytes-out')}B/{ini_child.get('packets-out')}p, "
        f"in {ini_child.get('bytes-in')}B/{ini_child.get('packets-in')}p")
    for side, c in (("ini", ini_child), ("res", res_child)):
        check(int(c.get("packets-out", 0)) >= 3 and int(c.get("packets-in", 0)) >= 3,
              f"{side} CHILD_SA counters do not show the 3 pings: {c}")
        check(int(c.get("bytes-out", 0)) > 0 and int(c.get("bytes-in", 0)) > 0,
              f"{side} CHILD_SA byte counters are zero: {c}")

    # Rekeying through the NAT: new CHILD_SA SPIs, then new IKE SPIs, tunnel still up.
    old_spi = ini_child.get("spi-in")
    ini.rekey(child=IKE)
    wait_until(lambda: any(c.get("state") == "INSTALLED" and c.get("spi-in") != old_spi
                           for c in child_sas(ini.list_sas().get(IKE, {}))),
               15, "a rekeyed CHILD_SA")
    old_ike_spi = ini.list_sas()[IKE].get("initiator-spi")
    ini.rekey(ike=IKE)
    wait_until(lambda: ini.list_sas().get(IKE, {}).get("initiator-spi") not in (None, old_ike_spi),
               15, "a rekeyed IKE_SA")
    established(ini, IKE)
    r = ping(t.ini, t.INI_INNER, t.RES_INNER, count=1)
    check(r.returncode == 0, f"ping after rekeying failed:\n{r.stdout}{r.stderr}")

    t0 = time.monotonic()
    ini.terminate(ike=IKE)
    check(IKE not in ini.list_sas(), "ini still lists the IKE_SA after terminate")
    wait_until(lambda: IKE not in res.list_sas(), 10, "res to delete the IKE_SA")
    log(f"terminated in {time.monotonic() - t0:.2f}s")
    r = ping(t.ini, t.INI_INNER, t.RES_INNER, count=1)
    check(r.returncode != 0, "inner address still reachable after the tunnel was deleted")


def requires():
    require_netns()
    require_strongswan()
    require_commands("ping", "iptables")


if __name__ == "__main__":
    run_test(test, "strongSwan baseline through NAT", requires=requires)
