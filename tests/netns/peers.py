"""Peer adapters: mobiked (through mobikectl) or strongSwan's charon (through swanctl) as
one end of a scenario's tunnel, behind one interface, so that a scenario runs the same
steps and checks whatever the pairing.

    tunnel = Tunnel("mob", res_addr=RES_ADDR)
    res = SwanPeer(lab, topo.res, tunnel, initiator=False, dpd=2).start()
    ini = MobikedPeer(lab, topo.ini, tunnel, initiator=True, dpd=2).start()
    ini.initiate()
    v = ini.established()   # the common view below, once ESTABLISHED with a Child SA
    ini.stop()

Every peer has: start(), initiate(), raw() (its own record of the IKE SA, None when it
has none), view(), exists(), established(timeout), rekey_child(), rekey_ike(),
terminate(), log_text() (the daemon's log), stop(); kind is MOBIKED or STRONGSWAN.
MobikedPeer adds stats() and .mobiked (the Mobiked driver, for mobikectl commands),
SwanPeer adds exchanges() and .charon (the Charon driver).

Authentication is the Tunnel's PSK unless a peer gets auth=PubkeyAuth(...): then it
authenticates with a certificate (pki.Cert) and checks the other end's against trust
anchors, with identities as PubkeyAuth says:

    pki = Pki(lab.dir / "pki")
    gw = pki.issue("gw", "C=CH, O=Mobike Test, CN=gw.example.test", san=["DNS:gw.example.test"])
    cl = pki.issue("cl", "C=CH, O=Mobike Test, CN=client.example.test")
    tunnel = Tunnel("t", res_addr=RES_ADDR, ini_id=cl.subject, res_id="gw.example.test")
    res = SwanPeer(lab, topo.res, tunnel, initiator=False, dpd=2,
                   auth=PubkeyAuth.of(gw, [pki.root], local_id="gw.example.test",
                                      remote_id="C=CH, O=Mobike Test, CN=*")).start()
    ini = MobikedPeer(lab, topo.ini, tunnel, initiator=True, dpd=2,
                      auth=PubkeyAuth.of(cl, [pki.root])).start()   # sends its subject DN

The Tunnel's ini_id / res_id stay what each end is known as (the other's remote_id by
default, and what a test expects the other end's view to name).

The common view of the tunnel's IKE SA (view(); None unless ESTABLISHED with an
INSTALLED Child SA), built from each daemon's own listing (mobikectl list-sas --json,
swanctl --list-sas):
    spi_i, spi_r       IKE SPIs (lower-case hex)
    local, remote      (address, port); port -1 when the listing has none
    nat_local          this peer is behind a NAT; nat_remote: the other one is
    spi_in, spi_out    the first INSTALLED Child SA's SPIs (lower-case hex; but see
                       SwanPeer's first_listed_child)
    children           how many INSTALLED Child SAs
    local_ts, remote_ts  that Child SA's traffic selectors (lists of CIDRs)
    id, child_id       the daemon's ids of the IKE SA and that Child SA
    local_id, remote_id  the identities as the daemon shows them (mobiked: local_id,
                       remote_id; strongSwan: local-id, remote-id), None when not shown
    peer_addresses     mobiked: the peer's addresses it knows; strongSwan: None
    switch, switching_to  mobiked: SWITCH_TO_IP_ADDRESS support of the peer, a switch in
                       flight; strongSwan: None
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from mobiked import MConn, Mobiked
from netns import Charon, Conn, Failure, Lab, Namespace, child_sas, in_uml, wait_until, xfrm_states
from topology import INI_INNER, RES_INNER

MOBIKED, STRONGSWAN = "mobiked", "strongSwan"
INI_ID, RES_ID = "ini@mobike.test", "res@mobike.test"


@dataclass(frozen=True)
class Tunnel:
    """What both peers configure (PSK authentication, one Child SA): the connection's
    name, the responder address the initiator dials, the inner addresses (the traffic
    selectors, /32 each) and the identities."""
    name: str
    res_addr: str
    ini_inner: str = INI_INNER
    res_inner: str = RES_INNER
    ini_id: str = INI_ID
    res_id: str = RES_ID


@dataclass(frozen=True)
class PubkeyAuth:
    """Certificate authentication of one end (both IKE_AUTH directions "pubkey"): cert
    and key (PEM; the key PKCS#8, mode 0600), intermediates sent along (in chain
    order), the trust anchors for the other end's certificate (cacerts), CRLs.
    local_id: the identity to send, None for the certificate's subject DN (the daemon's
    default), else a subjectAltName ("gw.example.test", "client@example.test") or the
    DN as text. remote_id: what the other end must be ("*@example.test", "C=CH,
    O=Mobike Test, CN=*", "%any"); None: the Tunnel's id of the other end (for a mobiked
    responder only with check_peer_id, as with PSK). send_cert ("always" | "ifasked" |
    "never") and send_certreq: None leaves the daemon's default (ifasked, yes)."""
    cert: str
    key: str
    cacerts: tuple[str, ...] = ()
    intermediates: tuple[str, ...] = ()
    crls: tuple[str, ...] = ()
    local_id: str | None = None
    remote_id: str | None = None
    send_cert: str | None = None
    send_certreq: bool | None = None

    @classmethod
    def of(cls, cert, cacerts: Iterable = (), **kw) -> "PubkeyAuth":
        """From a pki.Cert (its certificate, key and intermediates) and trust anchors
        (pki.Cert or paths)."""
        anchors = tuple(str(getattr(a, "cert", a)) for a in cacerts)
        kw.setdefault("intermediates", tuple(str(p) for p in cert.intermediates))
        kw["crls"] = tuple(str(p) for p in kw.get("crls", ()))
        return cls(cert=str(cert.cert), key=str(cert.key), cacerts=anchors, **kw)

    @property
    def local_certs(self) -> list[str]:
        return [self.cert, *self.intermediates]


def _port(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return -1


class Peer:
    """One end of `tunnel`, the initiator or the responder. Construction writes the
    configuration; start() runs the daemon."""

    kind = ""

    def __init__(self, tunnel: Tunnel, initiator: bool):
        self.tunnel = tunnel
        self.initiator = initiator

    @property
    def role(self) -> str:
        return "initiator" if self.initiator else "responder"

    @property
    def short(self) -> str:
        """"ini" or "res", as in the daemons' names (mobiked-ini, charon-res)."""
        return "ini" if self.initiator else "res"

    def _ts(self) -> tuple[list[str], list[str]]:
        """(local_ts, remote_ts) of this end."""
        t = self.tunnel
        mine, theirs = (t.ini_inner, t.res_inner) if self.initiator else (t.res_inner, t.ini_inner)
        return [mine + "/32"], [theirs + "/32"]

    def start(self) -> "Peer":
        raise NotImplementedError

    def initiate(self) -> None:
        raise NotImplementedError

    def raw(self) -> dict | None:
        raise NotImplementedError

    def view(self) -> dict | None:
        raise NotImplementedError

    def exists(self) -> bool:
        return self.raw() is not None

    def established(self, timeout: float = 20) -> dict:
        """Waits until view() shows the IKE SA ESTABLISHED with a Child SA; returns it."""
        return wait_until(self.view, timeout, f"{self.kind} {self.role}: IKE SA {self.tunnel.name} "
                                              "ESTABLISHED with an INSTALLED Child SA")

    def rekey_child(self) -> None:
        raise NotImplementedError

    def rekey_ike(self) -> None:
        raise NotImplementedError

    def terminate(self) -> None:
        raise NotImplementedError

    def log_text(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class MobikedPeer(Peer):
    """mobiked as one end. dpd: dpd_delay in seconds; retransmit: (first timeout in
    seconds, tries); path_timeout: mobike_path_timeout in seconds, how long mobiked keeps
    an SA without a working path (default 5 minutes); check_peer_id: the responder also
    names the initiator's identity (remote_id; without it, it accepts any); extra:
    connection-level keys MConn has no field for (switch_prefer, ...); auth: certificate
    authentication (PubkeyAuth) instead of the PSK."""

    kind = MOBIKED

    def __init__(self, lab: Lab, ns: Namespace, tunnel: Tunnel, *, initiator: bool, dpd: float,
                 retransmit: tuple[float, int] = (1.0, 4), log_level: str = "debug",
                 dataplane: str | None = None, path_timeout: float | None = None,
                 check_peer_id: bool = False, extra: dict | None = None,
                 auth: PubkeyAuth | None = None):
        super().__init__(tunnel, initiator)
        self.auth = auth
        self.ns = ns
        if dataplane is None:  # the kernel's where it has ESP, as a gateway would run
            dataplane = "xfrm" if in_uml() else "userspace"
        self.mobiked = Mobiked(lab, ns, f"mobiked-{self.short}", dataplane=dataplane,
                               retransmit_timeout=retransmit[0], retransmit_tries=retransmit[1],
                               log_level=log_level)
        if path_timeout is not None:
            self.mobiked.daemon_section += f'mobike_path_timeout = "{int(path_timeout)}s"\n'
        t = tunnel
        local_ts, remote_ts = self._ts()
        remote_id = t.res_id if initiator else (t.ini_id if check_peer_id else None)
        self.conn = MConn(
            t.name, local_id=t.ini_id if initiator else t.res_id,
            remote_id=remote_id,
            remote_addrs=[t.res_addr] if initiator else ["%any"],
            local_ts=local_ts, remote_ts=remote_ts, dpd_delay=f"{dpd:g}s", extra=dict(extra or {}))
        if auth is not None:
            c = self.conn
            c.local_id = auth.local_id
            c.remote_id = auth.remote_id if auth.remote_id is not None else remote_id
            c.auth, c.psk = "pubkey", None
            c.local_certs, c.local_key = auth.local_certs, auth.key
            c.cacerts, c.crls = list(auth.cacerts), list(auth.crls)
            c.send_cert, c.send_certreq = auth.send_cert, auth.send_certreq

    def start(self) -> "MobikedPeer":
        self.mobiked.start([self.conn])
        return self

    def initiate(self) -> None:
        self.mobiked.ctl("initiate", self.tunnel.name)

    def raw(self) -> dict | None:
        return self.mobiked.sa(self.tunnel.name)

    def view(self) -> dict | None:
        sa = self.raw()
        if not sa or sa.get("state") != "ESTABLISHED":
            return None
        kids = [c for c in sa.get("children", []) if c.get("state") == "INSTALLED"]
        if not kids:
            return None
        c = kids[0]
        return {"id": sa.get("id"), "spi_i": sa["spi_i"].lower(), "spi_r": sa["spi_r"].lower(),
                "local": (sa["local"]["addr"], _port(sa["local"]["port"])),
                "remote": (sa["remote"]["addr"], _port(sa["remote"]["port"])),
                "nat_local": bool(sa.get("nat_local")), "nat_remote": bool(sa.get("nat_remote")),
                "spi_in": c["spi_in"].lower(), "spi_out": c["spi_out"].lower(), "children": len(kids),
                "local_ts": c.get("local_ts"), "remote_ts": c.get("remote_ts"), "child_id": c.get("id"),
                "peer_addresses": sa.get("peer_addresses"), "switch": sa.get("switch"),
                "switching_to": sa.get("switching_to"),
                "local_id": sa.get("local_id"), "remote_id": sa.get("remote_id")}

    def rekey_child(self) -> None:
        self.mobiked.ctl("rekey", "--child", str(self.established()["child_id"]))

    def rekey_ike(self) -> None:
        self.mobiked.ctl("rekey", "--ike", str(self.established()["id"]))

    def terminate(self) -> None:
        self.mobiked.ctl("terminate", self.tunnel.name)

    def stats(self) -> dict:
        """mobikectl stats --json."""
        return self.mobiked.stats()

    def log_text(self) -> str:
        return self.mobiked.log_text()

    def stop(self) -> None:
        self.mobiked.stop()


class SwanPeer(Peer):
    """strongSwan's charon (kernel-libipsec) as one end, MOBIKE on. dpd: dpd_delay in
    seconds (0: none); retransmit: (first timeout in seconds, tries), None for charon's
    defaults; log_levels: charon's per-subsystem levels; local_addr: the only address to
    use (local_addrs; default any, so that it may move). first_listed_child: view()
    describes the first Child SA charon lists, whatever its state, instead of the first
    INSTALLED one; charon keeps listing a rekeyed Child SA for a few seconds, so with
    it two views agree after a rekey only once the old Child SA is gone. auth:
    certificate authentication (PubkeyAuth) instead of the PSK."""

    kind = STRONGSWAN

    def __init__(self, lab: Lab, ns: Namespace, tunnel: Tunnel, *, initiator: bool, dpd: float,
                 retransmit: tuple[float, int] | None = None, log_levels: dict | None = None,
                 local_addr: str | None = None, first_listed_child: bool = False,
                 auth: PubkeyAuth | None = None):
        super().__init__(tunnel, initiator)
        self.auth = auth
        self.ns = ns
        self.first_listed_child = first_listed_child
        rt, tries = retransmit if retransmit else (None, None)
        self.charon = Charon(lab, ns, f"charon-{self.short}", retransmit_timeout=rt,
                             retransmit_tries=tries, log_levels=log_levels)
        t = tunnel
        local_ts, remote_ts = self._ts()
        self.conn = Conn(
            t.name, local_id=t.ini_id if initiator else t.res_id,
            remote_id=t.res_id if initiator else t.ini_id,
            local_addrs=[local_addr] if local_addr else [],
            remote_addrs=[t.res_addr] if initiator else [],
            local_ts=local_ts, remote_ts=remote_ts, mobike=True,
            dpd_delay=int(dpd) if dpd else None)
        if auth is not None:
            c = self.conn
            c.local_id = auth.local_id
            if auth.remote_id is not None:
                c.remote_id = auth.remote_id
            c.local_auth = c.remote_auth = "pubkey"
            c.local_certs, c.local_key = auth.local_certs, auth.key
            c.cacerts, c.crls = list(auth.cacerts), list(auth.crls)
            c.send_cert, c.send_certreq = auth.send_cert, auth.send_certreq

    def start(self) -> "SwanPeer":
        self.charon.start()
        self.charon.load([self.conn])
        return self

    def initiate(self) -> None:
        self.charon.initiate(child=self.tunnel.name)

    def raw(self) -> dict | None:
        return self.charon.list_sas().get(self.tunnel.name)

    def view(self) -> dict | None:
        sa = self.raw()
        if not sa or sa.get("state") != "ESTABLISHED":
            return None
        kids = [c for c in child_sas(sa) if c.get("state") == "INSTALLED"]
        if not kids:
            return None
        c = child_sas(sa)[0] if self.first_listed_child else kids[0]
        return {"id": sa.get("uniqueid"), "spi_i": sa["initiator-spi"].lower(),
                "spi_r": sa["responder-spi"].lower(),
                "local": (sa["local-host"], _port(sa.get("local-port"))),
                "remote": (sa["remote-host"], _port(sa.get("remote-port"))),
                "nat_local": sa.get("nat-local") == "yes", "nat_remote": sa.get("nat-remote") == "yes",
                "spi_in": c["spi-in"].lower(), "spi_out": c["spi-out"].lower(), "children": len(kids),
                "local_ts": c.get("local-ts"), "remote_ts": c.get("remote-ts"), "child_id": c.get("uniqueid"),
                "peer_addresses": None, "switch": None, "switching_to": None,
                "local_id": sa.get("local-id"), "remote_id": sa.get("remote-id")}

    def rekey_child(self) -> None:
        self.charon.rekey(child=self.tunnel.name)

    def rekey_ike(self) -> None:
        self.charon.rekey(ike=self.tunnel.name)

    def terminate(self) -> None:
        self.charon.terminate(ike=self.tunnel.name)

    def exchanges(self) -> dict:
        """CREATE_CHILD_SA requests charon sent and received so far (its enc log, level 1)."""
        text = self.charon.log_text()
        return {"sent": text.count("generating CREATE_CHILD_SA request"),
                "received": text.count("parsed CREATE_CHILD_SA request")}

    def log_text(self) -> str:
        return self.charon.log_text()

    def stop(self) -> None:
        self.charon.stop()


def out_oseq(p: Peer, view: dict) -> int:
    """The outbound sequence number of the kernel's SA of the view's Child SA."""
    for sa in xfrm_states(p.ns):
        if sa["spi"] == view["spi_out"]:
            return sa["oseq"]
    raise Failure(f"{p.kind} {p.role}: no kernel SA with SPI {view['spi_out']}")
