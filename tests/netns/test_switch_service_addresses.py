#!/usr/bin/env python3
"""Responder-initiated switch from a gateway's service addresses, one ctest per place
they sit:

netns-params: lo interface

    lo          (netns.switch_service_addresses.lo)        switch scenario 5
    interface   (netns.switch_service_addresses.interface) switch scenario 6

The gateway's connection names its two service addresses, local_addrs =
[203.0.113.10, 203.0.113.20] (no switch_prefer); they are /32s on lo (as routed and
anycast addresses are) or on eth0 beside the interface's own 198.51.100.10 and .20, and
the NAT routes them via 198.51.100.10. The mobiked initiator behind the MASQUERADE NAT
dials 203.0.113.10; 203.0.113.10 is then deleted. The route's source towards the NAT is
198.51.100.10, which the connection does not name: the gateway must switch to
203.0.113.20, the address it announced in IKE_AUTH, and the client must follow at once.

Checks (tests/netns/switch_scenarios.py, as scenario 2): the initiator learnt
203.0.113.20 in IKE_AUTH; traffic flows through the tunnel before; afterwards both peers
on 203.0.113.20 with the same IKE and Child SPIs, no rekey; ESP counted on .20 both ways
and none on .10; the NAT's conntrack mapping to .20 carries the traffic; the responder's
automatic_switches went up by exactly one.

Run by hand: python3 tests/netns/test_switch_service_addresses.py lo
"""

import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from switch_scenarios import requires, run_checked  # noqa: E402
from netns import netns_param, run_test  # noqa: E402

SCENARIO = {"lo": 5, "interface": 6}

if __name__ == "__main__":
    where = netns_param(SCENARIO)
    run_test(lambda lab: run_checked(lab, SCENARIO[where]),
             f"Switch from service addresses on {where}: the one in use is deleted, automatic switch",
             requires=requires, timeout=120)
