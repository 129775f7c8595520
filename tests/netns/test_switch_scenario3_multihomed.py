#!/usr/bin/env python3
"""Responder-initiated switch, scenario 3: multihomed responder, the interface of the
SA's address goes down (`ip link set dev eth0 down`), automatic switch.

The responder has eth0 198.51.100.10/29 (default route metric 100) and eth1 with
198.51.100.19/29 (primary) and 198.51.100.20/29 (metric 200) on two routed segments that a
router joins to the NAT's outside (tests/netns/switch_scenarios.py draws it). When eth0
goes down its address stays configured but unusable (no routes) and the route to the
initiator's NAT now has source .19; mobiked's responder is configured with
switch_prefer = ["198.51.100.30", "198.51.100.20"] and must take the first usable entry,
.20, not the route's .19. Its SWITCH_TO_IP_ADDRESS request leaves from .10 through eth1
(IP_TRANSPARENT), the only way to pass the initiator's NAT.

Checks as scenario 1, and the responder's automatic_switches counter went up by exactly
one.
"""

import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from switch_scenarios import requires, run_checked  # noqa: E402
from netns import run_test  # noqa: E402

if __name__ == "__main__":
    run_test(lambda lab: run_checked(lab, 3),
             "Switch scenario 3: multihomed responder, interface down, automatic switch",
             requires=requires, timeout=120)
