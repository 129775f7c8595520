#!/usr/bin/env python3
"""strongSwan initiator -> mobiked responder through a Linux MASQUERADE NAT: establish, DPD, rekey the Child SA and the
IKE SA from both sides, delete from both sides — checked from both peers' own views.

    ini (10.1.0.2) -- nat (10.1.0.1 | 198.51.100.2) -- res (198.51.100.10)
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from interop import interop  # noqa: E402
from netns import find_binary, require_commands, require_netns, require_strongswan, run_test  # noqa: E402
from peers import MOBIKED, STRONGSWAN  # noqa: E402


def requires():
    require_netns()
    require_commands("iptables")
    if STRONGSWAN in (STRONGSWAN, MOBIKED):
        require_strongswan()
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    run_test(lambda lab: interop(lab, STRONGSWAN, MOBIKED), "strongSwan initiator -> mobiked responder", requires=requires)
