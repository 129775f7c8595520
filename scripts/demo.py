"""What mobiked is for, in one run (see scripts/demo): a gateway's address goes away
under a live tunnel to a client behind a NAT. With mobiked on both ends the SA follows
the gateway to its other address (SWITCH_TO_IP_ADDRESS); with strongSwan on both ends,
the same change loses the SA.

Both runs are switch scenario 2 of the netns tests (tests/netns/switch_scenarios.py):
real processes in network namespaces, a Linux MASQUERADE NAT that only lets in what the
client has sent to, a 10 ms ping through the tunnel."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "netns"))

import scenario  # noqa: E402
import switch_scenarios as sw  # noqa: E402
from netns import Failure, Lab, Skip, require_netns, require_strongswan  # noqa: E402
from topology import INI_ADDR, INI_INNER, NAT_OUTSIDE, RES_ADDR, RES_ADDR2, RES_INNER  # noqa: E402

SCENARIO = 2  # the gateway's address is deleted


def quiet(_message: str) -> None:
    """The scenario's own step-by-step log is for tests; the demo prints a summary."""


def spis(view: dict) -> str:
    return f"IKE {view['spi_i']}/{view['spi_r']}, Child {view['spi_in']}/{view['spi_out']}"


def run(title: str, kind: str) -> scenario.Result:
    print(f"\n{title}")
    t0 = time.monotonic()
    with Lab() as lab:
        r = sw.run_scenario(lab, SCENARIO, kind, kind, quiet=True, follow=2.0 if kind == sw.STRONGSWAN else 0.0)
    b = r.facts.get("before", {}).get("initiator")
    if b:
        print(f"  before   client -> gateway {b['remote'][0]}, {spis(b)}; ping flowing")
    print(f"  change   gateway: ip addr del {RES_ADDR} (its other address {RES_ADDR2} stays)")
    m = r.metrics
    if r.outcome == "moved":
        a = r.facts["after"]["initiator"]
        same = spis(a) == spis(b)
        print(f"  after    client -> gateway {a['remote'][0]}, {spis(a)}"
              f" ({'the same SA, no rekey' if same else 'NOT the same SA'})")
        print(f"           both peers on {RES_ADDR2} {scenario.fmt_ms(m.get('moved_ms'))} after the change;"
              f" longest ping gap {scenario.fmt_ms(m.get('gap_ms'))}, {m.get('lost')} pings lost")
        nat = r.facts.get("nat_mapping_new")
        if nat:
            o, rep = nat["orig"], nat["reply"]
            print(f"           NAT's new mapping {o['src']}:{o['sport']} -> {o['dst']}:{o['dport']} "
                  f"as {rep['dst']}:{rep['dport']}: {o.get('packets')} packets out, {rep.get('packets')} in")
    elif r.outcome == "deleted":
        roles = {"initiator": "client", "responder": "gateway"}
        who = " and ".join(roles.get(x.split()[-1], x) for x in r.facts.get("deleted_by", [])) or "a peer"
        print(f"  after    the {who} deleted the SA {m.get('deleted_ms', 0) / 1000:.1f} s after the change;"
              f" the tunnel is gone")
        giving_up = r.facts.get("charon_initiator_after_change", {}).get("giving_up") or []
        if giving_up:
            print(f"           charon: \"{giving_up[0].split('] ', 1)[-1].strip()}\"")
        print(f"           traffic stopped for good: {m.get('replies_after', 0)} ping replies after the change")
    else:
        print(f"  after    neither moved nor deleted within the wait: {r.outcome}")
    for p in r.problems:
        print(f"  problem  {p}")
    print(f"  ({time.monotonic() - t0:.0f} s)")
    return r


def main() -> int:
    try:
        require_netns()
    except Skip as e:
        print(f"cannot run the demo here: {e}")
        return 77
    for mod in (sw, scenario):
        mod.log = quiet
    print("mobiked demo: the gateway's address goes away under a live tunnel")
    print(f"  client {INI_ADDR} -- NAT {NAT_OUTSIDE} (MASQUERADE) -- gateway {RES_ADDR} and {RES_ADDR2}")
    print(f"  tunnel {INI_INNER} <-> {RES_INNER}, a 10 ms ping through it")
    try:
        mob = run("1. mobiked <-> mobiked", sw.MOBIKED)
        try:
            require_strongswan()
            swan = run("2. strongSwan <-> strongSwan (charon, MOBIKE on)", sw.STRONGSWAN)
        except Skip as e:
            print(f"\n2. strongSwan <-> strongSwan: skipped ({e})")
            swan = None
    except Failure as e:
        print(f"demo failed: {e}")
        return 1
    print()
    if mob.outcome == "moved":
        print(f"mobiked kept the SA: {scenario.fmt_ms(mob.metrics.get('gap_ms'))} without pings.", end=" ")
    else:
        print(f"mobiked did not keep the SA ({mob.outcome}).", end=" ")
    if swan is not None:
        print("strongSwan kept it." if swan.outcome == "moved" else "strongSwan lost it.")
    else:
        print()
    return 0 if mob.outcome == "moved" and not mob.problems else 1


if __name__ == "__main__":
    sys.exit(main())
