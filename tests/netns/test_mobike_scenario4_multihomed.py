#!/usr/bin/env python3
"""MOBIKE scenario 4: a multihomed initiator whose preferred interface goes down.

The initiator has two uplinks, eth0 behind NAT A (default route metric 100, preferred)
and eth1 behind NAT B (metric 200). `ip link set dev eth0 down` removes eth0's routes
but not its address: the SA's local address still exists on the host, only the route to
the peer now prefers eth1 with source 10.2.0.2. The initiator must move the SA there
(the responder then sees NAT B's 198.51.100.3), with the same SPIs, and the 10 ms ping
must resume.

A mobiked initiator follows the route's preferred source, so when eth0 comes back with
its default route the SA must move back to uplink A (responder sees 198.51.100.2 again,
same SPIs, traffic resumes). strongSwan 5.9.8 keeps a working path unless
charon.prefer_best_path is set (off by default), so the move back is not checked for a
strongSwan initiator.

Runs mobiked <-> mobiked, mobiked initiator <-> strongSwan responder and strongSwan
initiator <-> mobiked responder in fresh Labs (dpd_delay 2s). A strongSwan peer on
kernel-libipsec re-keys its CHILD_SA after a move by design (see
mobike_scenarios.check_same_sas); the IKE SPIs must never change.
"""

import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobike_scenarios import run_pairings  # noqa: E402
from netns import find_binary, require_commands, require_netns, require_strongswan, run_test  # noqa: E402


def test(_lab) -> None:
    run_pairings(4)


def requires():
    require_netns()
    require_strongswan()
    require_commands("iptables", "ping")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    run_test(test, "MOBIKE scenario 4: multihomed initiator, preferred interface goes down",
             requires=requires, timeout=240)
