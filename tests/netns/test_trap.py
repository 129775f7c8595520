#!/usr/bin/env python3
"""On-demand SAs (start = "trap", as in swanctl.conf): mobiked installs a trap for the
client's child and sets the connection up when traffic for it appears, through the
MASQUERADE NAT:

    ini (10.1.0.2, inner 192.0.2.1) -- nat -- res (198.51.100.10, inner 203.0.113.1)

netns-uml: yes

The data plane is the userspace one on the host (a route to the TUN device, packets
without a Child SA checked against the trap) and the kernel's inside user-mode-linux
(uml.trap: trap policies without SAs, XFRM_MSG_ACQUIRE).

1. Started, the client has no IKE SA, and (xfrm) the kernel holds the trap's out, in and
   fwd policies but no SA.
2. A 10 ms ping from the client's inner address: the trap reports it, the client
   initiates, and replies come back through the new Child SA.
3. The client terminates the connection under the ping: the next packets hit the trap
   again and a second IKE SA comes up; replies resume.
4. The daemon stops: (xfrm) no policy of the trap is left in the kernel.
"""

import re
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Lab, check, find_binary, in_uml, log, require_commands, require_netns,  # noqa: E402
                   run_test, wait_until, xfrm_states)
from scenario import Ping  # noqa: E402
from topology import INI_INNER, RES_INNER, nat_topology  # noqa: E402


def spd(ns) -> list[str]:
    out = ns.run(["ip", "-o", "xfrm", "policy"]).stdout
    return [line for line in out.splitlines() if line.strip() and not re.search(r"\bsocket (in|out)\b", line)]


def established(m: Mobiked, name: str):
    sa = m.sa(name)
    if sa and sa["state"] == "ESTABLISHED" and any(c["state"] == "INSTALLED" for c in sa["children"]):
        return sa
    return None


def test(lab: Lab) -> None:
    t = nat_topology(lab)
    dataplane = "xfrm" if in_uml() else "userspace"
    conn = dict(psk="mobike-test-psk-0123456789", dpd_delay="120s", ike_proposals="aes128gcm16-prfsha256-x25519",
                esp_proposals="aes128gcm16")
    gw = Mobiked(lab, t.res, "gateway", dataplane=dataplane).start([MConn(
        "clients", local_id="gw.mobike.test", remote_id=None, remote_addrs=["%any"], local_ts=[RES_INNER + "/32"],
        remote_ts=[INI_INNER + "/32"], **conn)])
    cl = Mobiked(lab, t.ini, "client", dataplane=dataplane).start([MConn(
        "office", local_id="client.mobike.test", remote_id="gw.mobike.test", remote_addrs=[t.RES_ADDR],
        local_ts=[INI_INNER + "/32"], remote_ts=[RES_INNER + "/32"], start="trap", **conn)])
    time.sleep(1.0)
    check(cl.sa("office") is None, f"the client set the connection up without traffic: {cl.sa('office')}")
    st = cl.stats()
    check(st["dataplane"]["traps"] == 1, f"the client's data plane holds {st['dataplane'].get('traps')} traps")
    if dataplane == "xfrm":
        pol = spd(t.ini)
        check(len(pol) == 3 and not xfrm_states(t.ini),
              f"the kernel should hold the trap's three policies and no SA: {pol} / {xfrm_states(t.ini)}")

    t0 = time.time()
    ping = Ping(t.ini)
    first = ping.wait_reply_after(t0, 15, "the first ping reply through the trapped connection")
    sa1 = established(cl, "office")
    check(sa1 is not None, "no IKE SA with a Child SA after the first reply")
    st = cl.stats()
    check(st["ike"]["established"] == 1, f"the client established {st['ike']['established']} IKE SAs")
    check(st["dataplane"]["acquires"] >= 1, f"the data plane reported no acquire: {st['dataplane']}")
    log(f"traffic set the connection up: first reply {first - t0:.2f} s after the first ping "
        f"({st['dataplane']['acquires']} acquire reports)")

    time.sleep(1.0)
    cl.ctl("terminate", "office")
    t1 = time.time()
    wait_until(lambda: cl.stats()["ike"]["established"] >= 2 or None, 20, "a second IKE SA set up by the trap")
    again = ping.wait_reply_after(t1 + 0.1, 15, "ping replies after the trap set the connection up again")
    sa2 = established(cl, "office")
    check(sa2 is not None and sa2["id"] != sa1["id"], f"no new IKE SA: {sa1} -> {sa2}")
    time.sleep(0.5)
    ping.stop()
    log(f"terminated under the ping: the trap set it up again, replies {again - t1:.2f} s later")

    cl.stop()
    if dataplane == "xfrm":
        left = spd(t.ini)
        check(not left, f"the trap's policies outlived the daemon: {left}")
    log("stopped: nothing of the trap left")
    gw.stop()


def requires():
    require_netns()
    require_commands("iptables", "ping")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    run_test(test, "start = \"trap\": traffic sets the connection up", timeout=120, requires=requires)
