#!/usr/bin/env python3
"""IKE interop through a Linux MASQUERADE NAT, one ctest per pairing of peers:

netns-params: mobiked_initiator mobiked_pair mobiked_responder

    mobiked_initiator   (netns.interop.mobiked_initiator) mobiked initiator -> strongSwan responder
    mobiked_pair        (netns.interop.mobiked_pair)      mobiked <-> mobiked
    mobiked_responder   (netns.interop.mobiked_responder) strongSwan initiator -> mobiked responder

    ini (10.1.0.2) -- nat (10.1.0.1 | 198.51.100.2) -- res (198.51.100.10)

Establish through the NAT, DPD, rekey the Child SA and the IKE SA from both sides,
delete from both sides, checked from both peers' own views (peers.Peer.view(): mobikectl
list-sas --json, swanctl --list-sas). After every step both views must describe the same
SAs: the same IKE SPIs, each one's inbound Child SPI the other's outbound, the NAT
detected by the initiator only, the responder seeing the initiator at the NAT's
198.51.100.2:4500, the initiator on 10.1.0.2:4500 -> 198.51.100.10:4500, and the
selectors 192.0.2.1/32 <-> 203.0.113.1/32. In detail:
  * established: both views agree;
  * DPD (dpd_delay 2s on both sides) for 5 s: the same IKE SA, and a mobiked peer
    exchanged at least 4 datagrams each way without a retransmission;
  * the initiator, then the responder, rekeys the Child SA (new SPIs, both agree, within
    15 s) and then the IKE SA (new IKE SPIs, both agree, the Child SA kept);
  * the initiator, then the responder (after initiating again), deletes the IKE SA: gone
    on both sides within 10 s.

Run by hand: python3 tests/netns/test_interop.py mobiked_pair
"""

import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from netns import (Failure, Lab, Namespace, check, find_binary, log, netns_param,  # noqa: E402
                   require_commands, require_netns, require_strongswan, run_test, wait_until)
from peers import MOBIKED, STRONGSWAN, MobikedPeer, Peer, SwanPeer, Tunnel  # noqa: E402
from topology import NatTopology, nat_topology  # noqa: E402

NAME = "tunnel"

PAIRINGS = {  # parameter: (initiator, responder, title)
    "mobiked_initiator": (MOBIKED, STRONGSWAN, "mobiked initiator -> strongSwan responder"),
    "mobiked_pair": (MOBIKED, MOBIKED, "mobiked <-> mobiked"),
    "mobiked_responder": (STRONGSWAN, MOBIKED, "strongSwan initiator -> mobiked responder"),
}


def make_peer(kind: str, lab: Lab, ns: Namespace, t: NatTopology, *, initiator: bool) -> Peer:
    """Both kinds: DPD every 2 s, retransmissions from 1 s, 3 tries. mobiked without a
    data plane, its responder also naming the initiator's identity; strongSwan bound to
    its host's one address, its view showing the first Child SA it lists (so that after a
    rekey the peers agree only once charon no longer lists the old one)."""
    tunnel = Tunnel(NAME, res_addr=t.RES_ADDR)
    if kind == MOBIKED:
        return MobikedPeer(lab, ns, tunnel, initiator=initiator, dpd=2, retransmit=(1.0, 3),
                           dataplane="none", check_peer_id=True).start()
    return SwanPeer(lab, ns, tunnel, initiator=initiator, dpd=2, retransmit=(1.0, 3),
                    local_addr=t.INI_ADDR if initiator else t.RES_ADDR, first_listed_child=True).start()


def agree(ini: Peer, res: Peer, t: NatTopology, what: str) -> tuple[dict, dict]:
    """Both peers' own views describe the same SAs, with the NAT on the initiator side."""
    a, b = ini.established(), res.established()
    check(a["spi_i"] == b["spi_i"] and a["spi_r"] == b["spi_r"],
          f"{what}: IKE SPIs differ: {a['spi_i']}/{a['spi_r']} vs {b['spi_i']}/{b['spi_r']}")
    check(a["spi_in"] == b["spi_out"] and a["spi_out"] == b["spi_in"],
          f"{what}: Child SPIs differ: ini in {a['spi_in']} out {a['spi_out']}, res in {b['spi_in']} out {b['spi_out']}")
    check(a["nat_local"], f"{what}: the initiator ({ini.kind}) did not detect its NAT")
    check(not b["nat_local"], f"{what}: the responder ({res.kind}) thinks it is behind a NAT")
    check(b["remote"] == (t.NAT_OUTSIDE, 4500),
          f"{what}: responder sees the peer at {b['remote']}, expected the NAT's {t.NAT_OUTSIDE}:4500")
    check(a["remote"] == (t.RES_ADDR, 4500), f"{what}: initiator talks to {a['remote']}")
    check(a["local"] == (t.INI_ADDR, 4500), f"{what}: initiator uses {a['local']}")
    check(a["local_ts"] == [t.INI_INNER + "/32"] and a["remote_ts"] == [t.RES_INNER + "/32"],
          f"{what}: initiator selectors {a['local_ts']} === {a['remote_ts']}")
    check(b["local_ts"] == [t.RES_INNER + "/32"] and b["remote_ts"] == [t.INI_INNER + "/32"],
          f"{what}: responder selectors {b['local_ts']} === {b['remote_ts']}")
    return a, b


def agrees(ini: Peer, res: Peer, t: NatTopology, what: str) -> bool:
    """agree() as a predicate for polling while an exchange completes."""
    try:
        agree(ini, res, t, what)
        return True
    except (Failure, KeyError, IndexError):
        return False


def interop(lab: Lab, ini_kind: str, res_kind: str) -> None:
    t = nat_topology(lab)
    res = make_peer(res_kind, lab, t.res, t, initiator=False)
    ini = make_peer(ini_kind, lab, t.ini, t, initiator=True)
    log(f"initiator {ini.kind}, responder {res.kind}")

    t0 = time.monotonic()
    ini.initiate()
    a, b = agree(ini, res, t, "established")
    log(f"established in {time.monotonic() - t0:.2f}s: IKE {a['spi_i']}/{a['spi_r']}, "
        f"child {a['spi_in']}/{a['spi_out']}")

    # Liveness checks (DPD every 2 s on both sides) keep the SA up and answered.
    time.sleep(5)
    a2, _ = agree(ini, res, t, "after DPD")
    check(a2["spi_i"] == a["spi_i"], "the IKE SA changed during DPD")
    for p in (ini, res):
        if isinstance(p, MobikedPeer):
            st = p.stats()
            check(st["datagrams"]["in"] >= 4 and st["datagrams"]["out"] >= 4,
                  f"{p.kind} exchanged no liveness checks: {st['datagrams']}")
            check(st["retransmits"]["sent"] == 0, f"{p.kind} had to retransmit: {st['retransmits']}")

    for who, p in (("initiator", ini), ("responder", res)):
        old = agree(ini, res, t, "before child rekey")[0]
        p.rekey_child()
        wait_until(lambda: ini.established()["spi_in"] != old["spi_in"] and
                   agrees(ini, res, t, f"child rekey by {who}"), 15, f"child rekey by the {who}")
        agree(ini, res, t, f"child rekey by the {who}")
        log(f"child SA rekeyed by the {who} ({p.kind})")
        old = agree(ini, res, t, "before IKE rekey")[0]
        p.rekey_ike()
        wait_until(lambda: ini.established()["spi_i"] != old["spi_i"] and
                   agrees(ini, res, t, f"IKE rekey by {who}"), 15, f"IKE rekey by the {who}")
        n = agree(ini, res, t, "after IKE rekey")[0]
        check(n["spi_in"] == old["spi_in"], "IKE rekey replaced the Child SA")
        log(f"IKE SA rekeyed by the {who} ({p.kind})")

    for who, p in (("initiator", ini), ("responder", res)):
        if not ini.exists():
            ini.initiate()
            agree(ini, res, t, "re-established")
        p.terminate()
        wait_until(lambda: not ini.exists() and not res.exists(), 10,
                   f"both sides to drop the SA deleted by the {who}")
        log(f"deleted by the {who} ({p.kind}): gone on both sides")


def requires(ini_kind: str, res_kind: str) -> None:
    require_netns()
    require_commands("iptables")
    if STRONGSWAN in (ini_kind, res_kind):
        require_strongswan()
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    ini_kind, res_kind, title = PAIRINGS[netns_param(PAIRINGS)]
    run_test(lambda lab: interop(lab, ini_kind, res_kind), title, requires=lambda: requires(ini_kind, res_kind))
