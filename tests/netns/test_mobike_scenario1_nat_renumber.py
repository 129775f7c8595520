#!/usr/bin/env python3
"""MOBIKE scenario 1: the initiator's NAT changes its public address.

NAT A's outside interface carries 198.51.100.2 (primary) and 198.51.100.4 (secondary,
promote_secondaries on). Deleting .2 makes MASQUERADE flush the conntrack entries that
used it and map the next packets to .4: the initiator's public address changes while
nothing changes on the initiator's host. Only a liveness check carrying NAT detection
payloads (RFC 4555 §3.8) reveals this; the initiator then sends UPDATE_SA_ADDRESSES
and the responder moves the SA to 198.51.100.4 (on its own prefix, so it can answer).

Settings, the same for mobiked and strongSwan: initiator dpd_delay 1s, responder 10s
(a responder's liveness checks would count as traffic and pre-empt the initiator's), one
second initial retransmission timeout. Before the change the tunnel stays idle for 3 s
so that the initiator runs a liveness check first: strongSwan 5.9.8 compares the NAT-D
hash of a liveness check only with that of an earlier liveness check (ike_sa.c
has_mapping_changed() keeps the first one as its baseline) and sends liveness checks
only after dpd_delay without incoming traffic, so without that quiet period a busy
strongSwan initiator never notices the change. The change then comes at a random point
(0 to dpd_delay) of the initiator's liveness-check cycle, so the logged delays are
samples, not an artefact of this script's timing.

Runs mobiked <-> mobiked, mobiked initiator <-> strongSwan responder and strongSwan
initiator <-> mobiked responder, each in a fresh Lab, with a 10 ms ping through the
tunnel. Checks: same IKE SPIs, same Child SPIs (a strongSwan peer on kernel-libipsec
re-keys its CHILD_SA after any address change by design, which is accepted only when
charon's own log shows it did so: see mobike_scenarios.check_same_sas), traffic resumes,
and both peers' own views (mobikectl list-sas --json, swanctl --list-sas) agree on the
new addresses. Logs the longest ping gap, when the initiator learnt of the change (the
first IKE response after it, from a capture) and when the responder showed the new
address.
"""

import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobike_scenarios import run_pairings  # noqa: E402
from netns import find_binary, require_commands, require_netns, require_strongswan, run_test  # noqa: E402


def test(_lab) -> None:
    run_pairings(1)


def requires():
    require_netns()
    require_strongswan()
    require_commands("iptables", "ping", "tcpdump")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    run_test(test, "MOBIKE scenario 1: the initiator's NAT changes its public address",
             requires=requires, timeout=240)
