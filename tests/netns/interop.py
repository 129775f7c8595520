"""The IKE interop scenario shared by the netns tests: establish through the NAT, check
both peers' own views, DPD, rekey both SA kinds from both sides, delete from both sides.

A peer is either mobiked or strongSwan behind one small adapter, so that the same checks
run for mobiked <-> strongSwan (both roles) and mobiked <-> mobiked.
"""

import time

from mobiked import MConn, Mobiked
from netns import Charon, Conn, Failure, Lab, check, child_sas, established, log, wait_until
from topology import nat_topology

NAME = "tunnel"


class SwanPeer:
    kind = "strongSwan"

    def __init__(self, lab, ns, *, initiator, t):
        self.charon = Charon(lab, ns, retransmit_timeout=1.0, retransmit_tries=3).start()
        me_ini = initiator
        self.charon.load([Conn(
            NAME, local_id="ini@mobike.test" if me_ini else "res@mobike.test",
            remote_id="res@mobike.test" if me_ini else "ini@mobike.test",
            local_addrs=[t.INI_ADDR if me_ini else t.RES_ADDR],
            remote_addrs=[t.RES_ADDR] if me_ini else [],
            local_ts=[(t.INI_INNER if me_ini else t.RES_INNER) + "/32"],
            remote_ts=[(t.RES_INNER if me_ini else t.INI_INNER) + "/32"],
            mobike=True, dpd_delay=2)])

    def initiate(self):
        self.charon.initiate(child=NAME)

    def view(self, timeout=20):
        sa = established(self.charon, NAME, timeout)
        c = child_sas(sa)[0]
        return {"spi_i": sa["initiator-spi"], "spi_r": sa["responder-spi"],
                "remote": (sa["remote-host"], int(sa["remote-port"])),
                "local": (sa["local-host"], int(sa["local-port"])),
                "nat_local": sa.get("nat-local") == "yes",
                "spi_in": c["spi-in"], "spi_out": c["spi-out"],
                "local_ts": c.get("local-ts"), "remote_ts": c.get("remote-ts")}

    def gone(self):
        return NAME not in self.charon.list_sas()

    def rekey_child(self):
        self.charon.rekey(child=NAME)

    def rekey_ike(self):
        self.charon.rekey(ike=NAME)

    def terminate(self):
        self.charon.terminate(ike=NAME)


class MobikedPeer:
    kind = "mobiked"

    def __init__(self, lab, ns, *, initiator, t):
        self.d = Mobiked(lab, ns, retransmit_timeout=1.0, retransmit_tries=3)
        me_ini = initiator
        self.d.start([MConn(
            NAME, local_id="ini@mobike.test" if me_ini else "res@mobike.test",
            remote_id="res@mobike.test" if me_ini else "ini@mobike.test",
            remote_addrs=[t.RES_ADDR] if me_ini else ["%any"],
            local_ts=[(t.INI_INNER if me_ini else t.RES_INNER) + "/32"],
            remote_ts=[(t.RES_INNER if me_ini else t.INI_INNER) + "/32"],
            dpd_delay="2s")])

    def initiate(self):
        self.d.ctl("initiate", NAME)

    def view(self, timeout=20):
        sa = self.d.established(NAME, timeout)
        c = [c for c in sa["children"] if c["state"] == "INSTALLED"][0]
        return {"spi_i": sa["spi_i"], "spi_r": sa["spi_r"],
                "remote": (sa["remote"]["addr"], sa["remote"]["port"]),
                "local": (sa["local"]["addr"], sa["local"]["port"]),
                "nat_local": sa["nat_local"], "spi_in": c["spi_in"], "spi_out": c["spi_out"],
                "local_ts": c["local_ts"], "remote_ts": c["remote_ts"], "id": sa["id"],
                "child_id": c["id"]}

    def gone(self):
        return self.d.sa(NAME) is None

    def rekey_child(self):
        self.d.ctl("rekey", "--child", str(self.view()["child_id"]))

    def rekey_ike(self):
        self.d.ctl("rekey", "--ike", str(self.view()["id"]))

    def terminate(self):
        self.d.ctl("terminate", NAME)


def agree(ini, res, t, what):
    """Both peers' own views describe the same SAs, with the NAT on the initiator side."""
    a, b = ini.view(), res.view()
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


def agrees(ini, res, t, what) -> bool:
    """agree() as a predicate for polling while an exchange completes."""
    try:
        agree(ini, res, t, what)
        return True
    except (Failure, KeyError, IndexError):
        return False


def scenario(lab: Lab, ini_cls, res_cls) -> None:
    t = nat_topology(lab)
    res = res_cls(lab, t.res, initiator=False, t=t)
    ini = ini_cls(lab, t.ini, initiator=True, t=t)
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
            st = p.d.stats()
            check(st["datagrams"]["in"] >= 4 and st["datagrams"]["out"] >= 4,
                  f"{p.kind} exchanged no liveness checks: {st['datagrams']}")
            check(st["retransmits"]["sent"] == 0, f"{p.kind} had to retransmit: {st['retransmits']}")

    for who, p in (("initiator", ini), ("responder", res)):
        old = agree(ini, res, t, "before child rekey")[0]
        p.rekey_child()
        wait_until(lambda: ini.view()["spi_in"] != old["spi_in"] and
                   agrees(ini, res, t, f"child rekey by {who}"), 15, f"child rekey by the {who}")
        agree(ini, res, t, f"child rekey by the {who}")
        log(f"child SA rekeyed by the {who} ({p.kind})")
        old = agree(ini, res, t, "before IKE rekey")[0]
        p.rekey_ike()
        wait_until(lambda: ini.view()["spi_i"] != old["spi_i"] and
                   agrees(ini, res, t, f"IKE rekey by {who}"), 15, f"IKE rekey by the {who}")
        n = agree(ini, res, t, "after IKE rekey")[0]
        check(n["spi_in"] == old["spi_in"], "IKE rekey replaced the Child SA")
        log(f"IKE SA rekeyed by the {who} ({p.kind})")

    for who, p in (("initiator", ini), ("responder", res)):
        if not ini.gone():
            pass
        else:
            ini.initiate()
            agree(ini, res, t, "re-established")
        p.terminate()
        wait_until(lambda: ini.gone() and res.gone(), 10, f"both sides to drop the SA deleted by the {who}")
        log(f"deleted by the {who} ({p.kind}): gone on both sides")
