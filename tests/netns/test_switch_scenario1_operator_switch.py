#!/usr/bin/env python3
"""Responder-initiated switch, scenario 1: the operator moves an SA while both addresses
work (`mobikectl switch --sa ID --to 198.51.100.20`).

mobiked initiator behind a Linux MASQUERADE NAT (address-and-port-dependent filtering),
mobiked responder with 198.51.100.10 (old, the SA's address) and 198.51.100.20 (new) on
one interface, a 10 ms ping through the tunnel (192.0.2.1 -> 203.0.113.1). The responder
sends SWITCH_TO_IP_ADDRESS(198.51.100.20) from 198.51.100.10; the initiator answers and
runs UPDATE_SA_ADDRESSES towards .20, which opens the NAT mapping there.

Checks (tests/netns/switch_scenarios.py): `mobikectl switch --json` reports one SA
switched; the responder announced-support flag (switch) is set; afterwards both peers
use 198.51.100.20 with the same IKE and Child SPIs, no SA was established anew on either
side (no rekey) and the switch was not counted as automatic; ESP flows to and from .20
and no longer on .10 (iptables counters at the responder); the NAT has a conntrack mapping
10.1.0.2:4500 -> 198.51.100.20:4500 that carries traffic both ways and matches the
initiator's address in the responder's view; the ping resumes. The longest ping gap is
logged.

netns-uml: yes
(inside user-mode-linux: mobiked on dataplane = "xfrm", charon on kernel-netlink; the
kernel's SAs must follow the move with their sequence numbers)
"""

import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from switch_scenarios import requires, run_checked  # noqa: E402
from netns import run_test  # noqa: E402

if __name__ == "__main__":
    run_test(lambda lab: run_checked(lab, 1), "Switch scenario 1: operator switch while both addresses work",
             requires=requires, timeout=120)
