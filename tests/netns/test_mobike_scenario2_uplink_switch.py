#!/usr/bin/env python3
"""MOBIKE scenario 2: the initiator moves from one uplink (behind NAT A) to another
(behind NAT B) and its old interface goes away.

    ini eth0 10.1.0.2 -- natA (198.51.100.2) --+
                                               +-- wan bridge -- res 198.51.100.10, .20
    ini eth1 10.2.0.2 -- natB (198.51.100.3) --+

Both uplinks are up with default routes (metric 100 via A, 200 via B); eth0 is deleted,
with its address. The initiator notices by itself (rtnetlink) and sends
UPDATE_SA_ADDRESSES over uplink B: the responder must then see 198.51.100.3, with the
same SPIs, and the 10 ms ping through the tunnel must resume. For a mobiked initiator the
move must be counted as automatic, and a mobiked responder must no longer list 10.1.0.2
among the initiator's addresses (peer_addresses).

Runs mobiked <-> mobiked, mobiked initiator <-> strongSwan responder and strongSwan
initiator <-> mobiked responder in fresh Labs (dpd_delay 2s everywhere). A strongSwan
peer on kernel-libipsec re-keys its CHILD_SA after the move by design (see
mobike_scenarios.check_same_sas); the IKE SPIs must never change. Replaces the former
test_mobike_uplink_switch.py (mobiked <-> mobiked only).

netns-uml: yes
(inside user-mode-linux: mobiked on dataplane = "xfrm", charon on kernel-netlink; the
kernel's SAs must follow the move with their sequence numbers)
"""

import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobike_scenarios import run_pairings  # noqa: E402
from netns import find_binary, require_commands, require_netns, require_strongswan, run_test  # noqa: E402


def test(_lab) -> None:
    run_pairings(2)


def requires():
    require_netns()
    require_strongswan()
    require_commands("iptables", "ping")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    run_test(test, "MOBIKE scenario 2: initiator switches uplinks (NAT A -> NAT B)",
             requires=requires, timeout=240)
