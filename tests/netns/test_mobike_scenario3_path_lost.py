#!/usr/bin/env python3
"""MOBIKE scenario 3: the initiator loses its only path and gets a new address minutes
later; the SA must survive (path testing, no re-keying).

netns-timeout: 1200

The initiator starts with one uplink (eth0 behind NAT A). eth0 is deleted: the host has
no address and no route towards the peer at all. After OUTAGE seconds (module constant
mobike_scenarios.S3_OUTAGE, default 45, environment MOBIKE_S3_OUTAGE) a new interface
eth1 appears behind NAT B. Both peers must still hold the SA with the same IKE SPIs
(checked every 5 s during the outage: a deletion fails the pairing and says who deleted
after how long), the initiator must find the new path and update the SA (the responder
then sees NAT B's 198.51.100.3) and the 10 ms ping through the tunnel must resume.

Settings: initiators run liveness checks every 2 s (mobiked dpd_delay "2s", strongSwan
dpd_delay 2s), so each notices the lost path during the outage. Both use the
harness' retransmission settings (1 s, 4 tries, base 1.8: each would give up after ~22 s
if it did not keep the SA for want of any path, so the default outage is twice that) and keeps an SA without a working path
for mobike_path_timeout (default 5 minutes; raised to OUTAGE + 120 s only for outages
over 240 s). Responders run no liveness checks: a responder's DPD rightly deletes
an SA whose peer stays silent for longer than its retransmission schedule (mobiked's
default ~83 s, strongSwan's ~165 s), and this scenario is about the initiator keeping
its SA while it has no path.

What strongSwan 5.9.8 does as the initiator, by design (task_manager_v2.c retransmit(),
ike_mobike.c transmit(), ike_sa.c roam()): on the address loss its roam handler finds no
route to any peer address and logs "no route found to reach ..., MOBIKE update
deferred", marking the IKE_SA stale; its MOBIKE-style liveness check then finds no path
either ("no route found to reach peer, MOBIKE update deferred") and is deferred instead
of retransmitted, so it never gives up while there is no route at all (it gives up
after its retransmissions only when a route exists but nobody answers). When an address
appears, roam() sends UPDATE_SA_ADDRESSES over the new path. So the strongSwan-initiator
pairing is expected to pass like the others; the test fails it if strongSwan deletes the
SA. strongSwan on kernel-libipsec re-keys its CHILD_SA after the move by design (see
mobike_scenarios.check_same_sas); the IKE SPIs must not change.

Run time: about 3 x (OUTAGE + 30 s). ctest's timeout for this test is 1200 s (the
netns-timeout line above, read by tests/netns/CMakeLists.txt); for longer outages run
the script directly, e.g.
    MOBIKE_S3_OUTAGE=300 MOBIKE_BUILD_DIR=build/h-netns python3 tests/netns/test_mobike_scenario3_path_lost.py
"""

import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobike_scenarios import S3_OUTAGE, run_pairings  # noqa: E402
from netns import find_binary, require_commands, require_netns, require_strongswan, run_test  # noqa: E402


def test(_lab) -> None:
    run_pairings(3)


def requires():
    require_netns()
    require_strongswan()
    require_commands("iptables", "ping")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    run_test(test, f"MOBIKE scenario 3: only path lost for {S3_OUTAGE:g}s, new address later",
             requires=requires, timeout=int(3 * (S3_OUTAGE + 90)))
