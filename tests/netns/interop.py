"""The IKE interop scenario shared by the netns tests: establish through the NAT, check
both peers' own views, DPD, rekey both SA kinds from both sides, delete from both sides.

A peer is mobiked or strongSwan behind one adapter (peers.py), so that the same checks
run for mobiked <-> strongSwan (both roles) and mobiked <-> mobiked.
"""

import time

from netns import Failure, Lab, Namespace, check, log, wait_until
from peers import MOBIKED, MobikedPeer, Peer, SwanPeer, Tunnel
from topology import NatTopology, nat_topology

NAME = "tunnel"


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
