#!/usr/bin/env python3
"""X.509 certificate authentication (issue 13) through a Linux MASQUERADE NAT, one ctest
per case, on a PKI made afresh by every run (pki.py, the openssl command):

netns-params: swan_pair_ecdsa256 swan_pair_revoked mobiked_responder_ecdsa256 mobiked_responder_rsa3072 mobiked_responder_ed25519 mobiked_initiator_ecdsa384 mobiked_pair_intermediate mobiked_pair_revoked mobiked_pair_wrong_ca fragments_mobiked_responder_rsa3072 fragments_mobiked_initiator_rsa3072

    ini (10.1.0.2, client) -- nat (10.1.0.1 | 198.51.100.2) -- res (198.51.100.10, gateway)

Cases (initiator -> responder):
    swan_pair_ecdsa256         strongSwan -> strongSwan: the baselines, which prove the
    swan_pair_revoked          PKI and the swanctl side of the harness
    mobiked_responder_<key>    strongSwan -> mobiked
    mobiked_initiator_ecdsa384 mobiked -> strongSwan
    mobiked_pair_intermediate  mobiked -> mobiked
    mobiked_pair_revoked       mobiked -> mobiked
    mobiked_pair_wrong_ca      mobiked -> mobiked
    fragments_mobiked_responder_rsa3072  strongSwan -> mobiked, RFC 7383 fragments
    fragments_mobiked_initiator_rsa3072  mobiked -> strongSwan, RFC 7383 fragments

Key-type cases (<key>: ecdsa256, ecdsa384, rsa3072, ed25519): the root CA and both
end entities have keys of that type (so the certificates are signed with it too: SHA-256,
SHA-384 for ecdsa384, Ed25519). The gateway's certificate is "C=CH, O=Mobike Test,
CN=gw.example.test" with subjectAltNames DNS:gw.example.test and IP:198.51.100.10; it
authenticates as "gw.example.test" (local_id, an FQDN from the SANs) and accepts
remote_id "C=CH, O=Mobike Test, CN=*". The client's certificate is "C=CH, O=Mobike Test,
CN=client.example.test"; it sets no local_id (so it sends its subject DN) and wants
remote_id "gw.example.test". Both trust the root only (cacerts), send_cert and
send_certreq are the daemons' defaults (ifasked, yes).

intermediate: the client's certificate (SAN email:client@example.test, subject "C=CH,
O=Mobike Test, CN=client") is issued by an intermediate CA that only the client has; it
authenticates as local_id "client@example.test" with send_cert "always" (its certificate
and the intermediate's), the gateway accepts remote_id "*@example.test" and trusts the
root only, so it must build the chain from the CERT payloads.

Checked for those (success): established on both sides through the NAT, both views
(mobikectl list-sas --json: remote_id; swanctl --list-sas: remote-id) name the other
end's identity (a DN may show as text, "C=CH, O=Mobike Test, CN=...", or as
"asn1dn:0x<DER>"), the same IKE and Child SPIs on both sides, a ping between the inner
addresses through the tunnel in both directions (mobiked's userspace data plane, charon's
kernel-libipsec), then a Child SA rekey by the initiator and an IKE SA rekey by the
responder (new SPIs, both views agree, still the same identities) and the ping again.

revoked: the client's certificate is revoked by a CRL the gateway has (crls); wrong_ca:
the client's certificate (same subject) comes from another root the gateway does not
trust. Checked (refused): no IKE SA comes up on either side (polled until the initiator
has its AUTHENTICATION_FAILED and 1 s more, then gone on both), the gateway's log says why (revoked / no trust chain), and the initiator's log
shows the AUTHENTICATION_FAILED notify it got.

fragments (RFC 7383, issue 14): the keytype set-up with RSA-3072 keys, fragmentation
announced by both (swanctl fragmentation = yes, mobiked's fragmentation = true) and
both daemons' default fragment size (1280 octets of IP packet): each IKE_AUTH (an
RSA-3072 certificate, a 384-octet signature, CERTREQ) is ~1.9 kB and must leave in
fragments both ways. Checked: established through the NAT with both views agreeing and
a ping both ways, mobiked's counters (mobikectl stats --json: fragments sent, received,
reassembled; none dropped) and charon's log (it split its IKE_AUTH message into
fragments and reassembled mobiked's). No rekeys: those messages fit one datagram.

Run by hand (root, a Release build):
    MOBIKE_BUILD_DIR=build/release python3 tests/netns/test_cert_interop.py swan_pair_ecdsa256
"""

import re
import sys
import time
from dataclasses import dataclass

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from netns import (Failure, Lab, Namespace, check, find_binary, log, netns_param,  # noqa: E402
                   require_commands, require_netns, require_strongswan, run_test, wait_until)
from peers import MOBIKED, STRONGSWAN, MobikedPeer, Peer, PubkeyAuth, SwanPeer, Tunnel  # noqa: E402
from pki import Cert, Pki, dn_equal  # noqa: E402
from topology import NatTopology, nat_topology  # noqa: E402

NAME = "tunnel"
GW_SUBJECT = "C=CH, O=Mobike Test, CN=gw.example.test"
GW_ID = "gw.example.test"
CLIENT_SUBJECT = "C=CH, O=Mobike Test, CN=client.example.test"
CLIENT_DN_PATTERN = "C=CH, O=Mobike Test, CN=*"
CLIENT_EMAIL = "client@example.test"


@dataclass(frozen=True)
class Case:
    ini: str        # MOBIKED or STRONGSWAN
    res: str
    scenario: str   # "keytype" | "intermediate" | "revoked" | "wrong_ca" | "fragments"
    key_type: str = "ecdsa256"
    title: str = ""


def _cases() -> dict[str, Case]:
    cases = {}
    # Two baselines between charons: they prove the PKI and the swanctl side of the
    # harness; pki.py's own check covers every key type (python3 tests/netns/pki.py).
    cases["swan_pair_ecdsa256"] = Case(STRONGSWAN, STRONGSWAN, "keytype", "ecdsa256",
                                       "strongSwan -> strongSwan, ecdsa256 certificates")
    cases["swan_pair_revoked"] = Case(STRONGSWAN, STRONGSWAN, "revoked", title="strongSwan -> strongSwan, revoked")
    for scenario in ("intermediate", "revoked", "wrong_ca"):
        cases[f"mobiked_pair_{scenario}"] = Case(MOBIKED, MOBIKED, scenario,
                                                 title=f"mobiked -> mobiked, {scenario}")
    for kt in ("ecdsa256", "rsa3072", "ed25519"):
        cases[f"mobiked_responder_{kt}"] = Case(STRONGSWAN, MOBIKED, "keytype", kt,
                                                f"strongSwan -> mobiked responder, {kt} certificates")
    cases["mobiked_initiator_ecdsa384"] = Case(MOBIKED, STRONGSWAN, "keytype", "ecdsa384",
                                               "mobiked initiator -> strongSwan, ecdsa384 certificates")
    cases["fragments_mobiked_responder_rsa3072"] = Case(
        STRONGSWAN, MOBIKED, "fragments", "rsa3072", "strongSwan -> mobiked responder, fragmented IKE_AUTH (RFC 7383)")
    cases["fragments_mobiked_initiator_rsa3072"] = Case(
        MOBIKED, STRONGSWAN, "fragments", "rsa3072", "mobiked initiator -> strongSwan, fragmented IKE_AUTH (RFC 7383)")
    return cases


CASES = _cases()


# --------------------------------------------------------------------------- set-up


@dataclass
class Setup:
    """What each end configures, and what the other end must show as its identity."""
    tunnel: Tunnel
    ini_auth: PubkeyAuth
    res_auth: PubkeyAuth
    ini_shows: str          # the identity the initiator's view names (the gateway's)
    res_shows: str          # the identity the responder's view names (the client's)
    res_shows_cert: Cert    # the client's certificate (its subject DER, for a DN shown as hex)
    ini_shows_cert: Cert
    refusal: str = ""       # for a refused case: what the gateway's log must say (regex)
    fragmentation: bool = False  # RFC 7383 announced explicitly by both


def make_setup(lab: Lab, t: NatTopology, case: Case) -> Setup:
    t0 = time.monotonic()
    ca_key = case.key_type if case.scenario in ("keytype", "fragments") else "ecdsa256"
    pki = Pki(lab.dir / "pki", ca_key_type=ca_key)
    gw = pki.issue("gw", GW_SUBJECT, key_type=case.key_type,
                   san=[f"DNS:{GW_ID}", f"IP:{t.RES_ADDR}"])
    res_auth = dict(local_id=GW_ID, remote_id=CLIENT_DN_PATTERN)
    ini_auth: dict = {}
    client_id, refusal = CLIENT_SUBJECT, ""
    if case.scenario == "intermediate":
        sub = pki.intermediate("sub", "C=CH, O=Mobike Test, CN=Mobike Test Intermediate CA")
        client = pki.issue("client", "C=CH, O=Mobike Test, CN=client",
                           san=[f"email:{CLIENT_EMAIL}"], issuer=sub)
        client_id = CLIENT_EMAIL
        ini_auth = dict(local_id=CLIENT_EMAIL, send_cert="always")
        res_auth = dict(local_id=GW_ID, remote_id="*@example.test", send_cert="always")
    elif case.scenario == "wrong_ca":
        other = Pki(lab.dir / "other-pki", ca_subject="C=CH, O=Other Test, CN=Other Test Root CA")
        client = other.issue("client", CLIENT_SUBJECT, san=["DNS:client.example.test"])
        refusal = "trust"
    else:
        client = pki.issue("client", CLIENT_SUBJECT, key_type=case.key_type,
                           san=["DNS:client.example.test"])
    if case.scenario == "revoked":
        res_auth["crls"] = [pki.crl([client])]
        refusal = "revoked"
    log(f"PKI made in {time.monotonic() - t0:.1f}s: root {pki.root.key_type}, "
        f"gateway {gw.key_type}, client {client.key_type}"
        + (f" under {client.issuer.subject!r}" if client.issuer is not pki.root else ""))
    tunnel = Tunnel(NAME, res_addr=t.RES_ADDR, ini_id=client_id, res_id=GW_ID)
    return Setup(tunnel=tunnel,
                 ini_auth=PubkeyAuth.of(client, [pki.root], **ini_auth),
                 res_auth=PubkeyAuth.of(gw, [pki.root], **res_auth),
                 ini_shows=GW_ID, res_shows=client_id, res_shows_cert=client, ini_shows_cert=gw,
                 refusal=refusal, fragmentation=case.scenario == "fragments")


def make_peer(kind: str, lab: Lab, ns: Namespace, t: NatTopology, s: Setup, *, initiator: bool) -> Peer:
    """DPD every 2 s, retransmissions from 1 s, 3 tries; mobiked with its userspace data
    plane (the kernel's in user-mode-linux), charon bound to its host's one address."""
    auth = s.ini_auth if initiator else s.res_auth
    if kind == MOBIKED:
        peer = MobikedPeer(lab, ns, s.tunnel, initiator=initiator, dpd=2, retransmit=(1.0, 3), auth=auth)
        if s.fragmentation:
            peer.conn.extra["fragmentation"] = True
        return peer.start()
    swan = SwanPeer(lab, ns, s.tunnel, initiator=initiator, dpd=2, retransmit=(1.0, 3),
                    local_addr=t.INI_ADDR if initiator else t.RES_ADDR, first_listed_child=True,
                    auth=auth)
    if s.fragmentation:  # charon's default, said out loud
        swan.conn.extra["fragmentation"] = "yes"
    return swan.start()


# --------------------------------------------------------------------------- checks


def identity_shown(shown: str | None, expected: str, cert: Cert) -> bool:
    """Whether a daemon's text of an identity names `expected`: a DN as text in the same
    order (spacing aside) or as asn1dn:0x<the certificate's subject DER>; anything
    else exactly."""
    if shown is None:
        return False
    if "=" in expected and not expected.startswith("@"):
        if shown.lower().startswith("asn1dn:0x"):
            return shown[len("asn1dn:0x"):].lower() == cert.subject_der().hex()
        return dn_equal(shown, expected)
    return shown == expected


def agree(ini: Peer, res: Peer, t: NatTopology, s: Setup, what: str) -> tuple[dict, dict]:
    """Both views describe the same SAs through the NAT, naming each other's identity."""
    a, b = ini.established(), res.established()
    check(a["spi_i"] == b["spi_i"] and a["spi_r"] == b["spi_r"],
          f"{what}: IKE SPIs differ: {a['spi_i']}/{a['spi_r']} vs {b['spi_i']}/{b['spi_r']}")
    check(a["spi_in"] == b["spi_out"] and a["spi_out"] == b["spi_in"],
          f"{what}: Child SPIs differ: ini in {a['spi_in']} out {a['spi_out']}, "
          f"res in {b['spi_in']} out {b['spi_out']}")
    check(a["nat_local"] and not b["nat_local"], f"{what}: NAT not detected on the initiator's side only")
    check(b["remote"] == (t.NAT_OUTSIDE, 4500),
          f"{what}: the responder sees the peer at {b['remote']}, not the NAT's {t.NAT_OUTSIDE}:4500")
    check(identity_shown(a["remote_id"], s.ini_shows, s.ini_shows_cert),
          f"{what}: the initiator ({ini.kind}) names the gateway {a['remote_id']!r}, expected {s.ini_shows!r}")
    check(identity_shown(b["remote_id"], s.res_shows, s.res_shows_cert),
          f"{what}: the responder ({res.kind}) names the client {b['remote_id']!r}, expected {s.res_shows!r}")
    # Each end's own identity as it shows it: what it sent (the client's subject DN when
    # it configured none).
    check(identity_shown(a["local_id"], s.res_shows, s.res_shows_cert),
          f"{what}: the initiator ({ini.kind}) shows its own identity as {a['local_id']!r}, "
          f"expected {s.res_shows!r}")
    check(identity_shown(b["local_id"], s.ini_shows, s.ini_shows_cert),
          f"{what}: the responder ({res.kind}) shows its own identity as {b['local_id']!r}, "
          f"expected {s.ini_shows!r}")
    return a, b


def agrees(ini: Peer, res: Peer, t: NatTopology, s: Setup, what: str) -> bool:
    try:
        agree(ini, res, t, s, what)
        return True
    except (Failure, KeyError, IndexError):
        return False


def ping_both_ways(ini: Peer, res: Peer, t: NatTopology, what: str) -> None:
    for ns, src, dst, who in ((ini.ns, t.INI_INNER, t.RES_INNER, "initiator"),
                              (res.ns, t.RES_INNER, t.INI_INNER, "responder")):
        r = ns.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", "-I", src, dst],
                   check=False, timeout=20)
        check(r.returncode == 0, f"{what}: ping from the {who}'s side {src} -> {dst} through the "
                                 f"tunnel failed:\n{r.stdout}{r.stderr}")


def initiate(ini: Peer) -> None:
    if isinstance(ini, SwanPeer):
        # swanctl --initiate waits for the result; refused, it exits non-zero.
        ini.charon.swanctl("--initiate", "--child", NAME, "--timeout", "15", check=False, timeout=25)
    else:
        ini.initiate()


def succeeds(lab: Lab, t: NatTopology, s: Setup, ini: Peer, res: Peer) -> None:
    t0 = time.monotonic()
    initiate(ini)
    a, b = agree(ini, res, t, s, "established")
    log(f"established in {time.monotonic() - t0:.2f}s: IKE {a['spi_i']}/{a['spi_r']}, "
        f"initiator names {a['remote_id']!r}, responder names {b['remote_id']!r}")
    ping_both_ways(ini, res, t, "established")
    log("ping through the tunnel both ways")

    old = a
    ini.rekey_child()
    wait_until(lambda: ini.established()["spi_in"] != old["spi_in"] and
               agrees(ini, res, t, s, "child rekey"), 15, "the Child SA rekey by the initiator")
    n, _ = agree(ini, res, t, s, "after the Child SA rekey")
    check(n["spi_i"] == old["spi_i"], "the Child SA rekey replaced the IKE SA")
    log(f"Child SA rekeyed by the initiator: {old['spi_in']} -> {n['spi_in']}")

    old = n
    res.rekey_ike()
    wait_until(lambda: ini.established()["spi_i"] != old["spi_i"] and
               agrees(ini, res, t, s, "IKE rekey"), 15, "the IKE SA rekey by the responder")
    n, _ = agree(ini, res, t, s, "after the IKE SA rekey")
    check(n["spi_in"] == old["spi_in"], "the IKE SA rekey replaced the Child SA")
    log(f"IKE SA rekeyed by the responder: {old['spi_i']} -> {n['spi_i']}, identities kept")
    ping_both_ways(ini, res, t, "after the rekeys")
    log("ping through the tunnel both ways after the rekeys")


def state_of(p: Peer) -> str | None:
    sa = p.raw()
    return None if sa is None else sa.get("state")


def refused(lab: Lab, t: NatTopology, s: Setup, ini: Peer, res: Peer) -> None:
    initiate(ini)
    # Neither side may get an IKE SA up, not even for a moment, while the exchange runs:
    # until the initiator has the refusal, and a second more.
    notify = r"AUTHENTICATION_FAILED" if isinstance(ini, SwanPeer) else r"(?i)AUTHENTICATION_FAILED|authentication failed"
    deadline = time.monotonic() + 10
    settled = None
    while time.monotonic() < deadline and (settled is None or time.monotonic() < settled):
        for p in (ini, res):
            check(state_of(p) != "ESTABLISHED", f"the {p.role} ({p.kind}) established an IKE SA "
                                                f"with a refused certificate: {p.raw()}")
        if settled is None and re.search(notify, ini.log_text()):
            settled = time.monotonic() + 1
        time.sleep(0.2)
    wait_until(lambda: not ini.exists() and not res.exists(), 10, "no IKE SA left on either side")
    if isinstance(res, SwanPeer):  # charon's own words (revocation plugin, credential manager)
        reason = {"revoked": r"certificate was revoked",
                  "trust": r"no issuer certificate found|no trusted \S+ public key found"}[s.refusal]
        lines = [ln for ln in res.log_text().splitlines() if re.search(reason, ln)]
    else:  # a warning or error naming the cause
        reason = {"revoked": r"(?i)revoked",
                  "trust": r"(?i)untrusted|not trusted|no trust|trust anchor|unknown (ca|issuer)|"
                           r"issuer|unable to get|chain"}[s.refusal]
        lines = [ln for ln in res.log_text().splitlines()
                 if re.search(reason, ln) and re.search(r"(?i)\b(warning|error)\b|refused|fail", ln)]
    check(bool(lines), f"the gateway ({res.kind}) does not log why it refused the client "
                       f"(/{reason}/ in no warning of its log)")
    log(f"gateway ({res.kind}) says: {lines[0].strip()}")
    check(re.search(notify, ini.log_text()) is not None,
          f"the initiator ({ini.kind}) does not log the AUTHENTICATION_FAILED notify")
    log(f"initiator ({ini.kind}) got AUTHENTICATION_FAILED; no IKE SA on either side")


def fragmented(lab: Lab, t: NatTopology, s: Setup, ini: Peer, res: Peer) -> None:
    """IKE_AUTH went out as RFC 7383 fragments both ways, and the SA works."""
    t0 = time.monotonic()
    initiate(ini)
    a, b = agree(ini, res, t, s, "established")
    log(f"established in {time.monotonic() - t0:.2f}s: IKE {a['spi_i']}/{a['spi_r']}")
    ping_both_ways(ini, res, t, "established")
    log("ping through the tunnel both ways")
    mob, swan = (ini, res) if isinstance(ini, MobikedPeer) else (res, ini)
    st = mob.stats().get("fragments", {})
    check(st.get("sent", 0) >= 2, f"mobiked sent no fragmented message: {st}")
    check(st.get("received", 0) >= 2 and st.get("reassembled", 0) >= 1,
          f"mobiked reassembled no fragmented message: {st}")
    check(st.get("dropped", 0) == 0, f"mobiked dropped fragments: {st}")
    text = swan.log_text()
    # charon's own words (message.c, enc 1): how it split its message and put ours together.
    split = re.findall(r"splitting IKE message \((\d+) bytes\) into (\d+) fragments", text)
    joined = re.findall(r"reassembled fragmented IKE message \((\d+) bytes\)", text)
    check(bool(split), "charon did not split its IKE_AUTH message into fragments")
    check(bool(joined), "charon did not reassemble a fragmented message of mobiked's")
    mine = [ln.split("] ", 1)[-1] for ln in mob.log_text().splitlines() if "fragments (" in ln]
    log(f"mobiked: {st['sent']} fragments sent, {st['received']} received, {st['reassembled']} reassembled"
        + (f" ({mine[0].strip()})" if mine else ""))
    log(f"charon: split {', '.join(f'{n} bytes into {k}' for n, k in split)}; "
        f"reassembled {', '.join(n + ' bytes' for n in joined)}")


def run_case(lab: Lab, case: Case) -> None:
    t = nat_topology(lab)
    s = make_setup(lab, t, case)
    res = make_peer(case.res, lab, t.res, t, s, initiator=False)
    ini = make_peer(case.ini, lab, t.ini, t, s, initiator=True)
    if s.refusal:
        refused(lab, t, s, ini, res)
    elif s.fragmentation:
        fragmented(lab, t, s, ini, res)
    else:
        succeeds(lab, t, s, ini, res)


def requires(case: Case) -> None:
    require_netns()
    require_commands("iptables", "openssl", "ping")
    if STRONGSWAN in (case.ini, case.res):
        require_strongswan()
    if MOBIKED in (case.ini, case.res):
        find_binary("mobiked")
        find_binary("mobikectl")


if __name__ == "__main__":
    case = CASES[netns_param(CASES)]
    run_test(lambda lab: run_case(lab, case), case.title, timeout=120, requires=lambda: requires(case))
