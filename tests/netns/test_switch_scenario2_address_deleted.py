#!/usr/bin/env python3
"""Responder-initiated switch, scenario 2: the SA's address 198.51.100.10 is deleted
from the responder (`ip addr del`), which switches by itself.

mobiked initiator behind a Linux MASQUERADE NAT (address-and-port-dependent filtering),
mobiked responder with 198.51.100.10 and 198.51.100.20 on one interface (deleting the
primary .10 keeps .20: promote_secondaries), a 10 ms ping through the tunnel. mobiked's
address monitor sees .10 go; the SA's new address is the route's source address towards
the initiator's NAT (no switch_prefer configured), .20. The SWITCH_TO_IP_ADDRESS request
leaves from the vanished .10 (IP_TRANSPARENT) so that it passes the initiator's NAT.

Checks as scenario 1 (tests/netns/switch_scenarios.py), and the responder's
automatic_switches counter went up by exactly one.

netns-uml: yes
(inside user-mode-linux: mobiked on dataplane = "xfrm", charon on kernel-netlink; the
kernel's SAs must follow the move with their sequence numbers)
"""

import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from switch_scenarios import requires, run_checked  # noqa: E402
from netns import run_test  # noqa: E402

if __name__ == "__main__":
    run_test(lambda lab: run_checked(lab, 2), "Switch scenario 2: the old address is deleted, automatic switch",
             requires=requires, timeout=120)
