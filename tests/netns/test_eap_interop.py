#!/usr/bin/env python3
"""EAP-MSCHAPv2 in IKE_AUTH (RFC 7296 section 2.16) between mobiked and strongSwan 5.9.8
(its eap-mschapv2 plugin from libcharon-extauth-plugins) through a Linux MASQUERADE NAT,
one ctest per case:

netns-params: swan_client_mschapv2 swan_client_wrong_password mobiked_client_swan_gw mobiked_pair_switch swan_client_tls mobiked_client_tls_swan_gw swan_client_tls13 mobiked_client_tls13_swan_gw many_clients

    ini (10.1.0.2, client) -- nat (10.1.0.1 | 198.51.100.2) -- res (198.51.100.10, gateway)
                                                                203.0.113.1/32 on lo

The gateway authenticates with an ECDSA P-256 certificate ("C=CH, O=Mobike Test,
CN=gw.example.test", SAN DNS:gw.example.test, made per run by pki.py) and the client by
EAP-MSCHAPv2 as user "carol"; the gateway asks for the EAP identity (eap_id = %any),
gives the client a virtual IP from the pool 10.3.0.0/24 and narrows its selectors to it.

Cases:
    swan_client_mschapv2  charon as the road warrior against the mobiked gateway:
                     established; charon logs the EAP-MSCHAPv2 success with an MSK and the
                     gateway's certificate authentication; mobiked's SA shows the client's
                     IKE identity and remote_eap_id "carol"; the lease of 10.3.0.1 is
                     carol's; a ping from 10.3.0.1 gets replies. Then charon rekeys the
                     Child SA and the IKE SA: one IKE SA, one Child SA, the same virtual IP
                     and EAP identity on mobiked, the ping works.
    swan_client_wrong_password  charon with the wrong password: no SA on either side,
                     mobiked logs that carol's password does not match, charon that it
                     received EAP-Failure; the pool has no lease.
    mobiked_client_swan_gw  mobiked as the EAP-MSCHAPv2 client (eap_id carol, eap_secrets)
                     against a charon gateway with the same method, eap_id %any and a
                     pool: established, charon shows remote-eap-id carol, mobiked got
                     10.3.0.1 on its TUN device and pings from it.
    mobiked_pair_switch  mobiked client and mobiked gateway, EAP-MSCHAPv2 as above; the
                     gateway's operator moves every SA to its second address (mobikectl
                     switch --to 198.51.100.20 --all): the IKE and Child SPIs, the virtual IP
                     and the EAP identity are kept (no new authentication), and pings go
                     through after the switch.

EAP-TLS (RFC 5216 / 9190), the client with an RSA-3072 certificate "C=CH, O=Mobike Test,
CN=carol" (SAN email:carol@example.test) from the same root, EAP identity
carol@example.test:
    swan_client_tls  charon (eap-tls plugin, libtls log level 2: "negotiated TLS 1.2 using
                     suite ...") against the mobiked gateway (remote_auth
                     "eap-tls", cacerts the root): established; charon logs the EAP-TLS
                     success with an MSK and the gateway's MSK authentication; mobiked
                     shows remote_eap_id carol@example.test and leases 10.3.0.1 to it;
                     ping.
    mobiked_client_tls_swan_gw  mobiked as the EAP-TLS client against a charon gateway
                     with eap-tls and a pool: charon shows remote-eap-id
                     carol@example.test; mobiked gets 10.3.0.1 and pings from it.
    Both with charon's default TLS versions (strongSwan 5.9: 1.2 only), and both ends
    must log TLS 1.2 and the same cipher suite. Then the same with charon held to TLS 1.3
    by strongswan.conf's "libtls { version_min = 1.3  version_max = 1.3 }", where both
    ends must log TLS 1.3 and the same suite. strongSwan before 5.9.10 (Debian 12: 5.9.8)
    does EAP-TLS over TLS 1.3 as before RFC 9190 (the MSK from TLS 1.2's exporter label,
    no commitment message), so mobiked's connection gets eap_tls13 = "pre-rfc9190" there:
    swan_client_tls13  as swan_client_tls.
    mobiked_client_tls13_swan_gw  as mobiked_client_tls_swan_gw.

Several road warriors on one gateway connection:
    many_clients     three EAP-MSCHAPv2 clients behind the same NAT, each in its own
                     namespace on the NAT's inside LAN, with the same IKE identity and
                     their own EAP identities: charon as carol (ini), charon as dave and
                     mobiked as erin, all started at once, and at the same time a charon
                     claiming to be carol with a wrong password. The gateway (the one
                     connection, eap_id %any, one pool) holds three IKE SAs from the NAT's
                     public address on three ports, each with its EAP identity, its own
                     virtual IP leased to that identity and a Child SA narrowed to it; the
                     wrong password is refused without a lease; each client pings from
                     its virtual IP.

Run by hand (root, a Release build):
    MOBIKE_BUILD_DIR=build/release python3 tests/netns/test_eap_interop.py swan_client_mschapv2
"""

import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Charon, Conn, Lab, Skip, check, find_binary, log, netns_param,  # noqa: E402
                   require_commands, require_netns, require_strongswan, run_test, swanctl_conf, wait_until)
from peers import PubkeyAuth  # noqa: E402
from pki import Pki  # noqa: E402
from switch_scenarios import NEW, OLD, make_topology  # noqa: E402
from topology import NatTopology, nat_topology  # noqa: E402

NAME = "rw"
POOL = "rw"
POOL_PREFIX = "10.3.0.0/24"
VIP = "10.3.0.1"
DNS = "10.3.0.53"
GW_SUBJECT = "C=CH, O=Mobike Test, CN=gw.example.test"
GW_ID = "gw.example.test"
GW_NET = "203.0.113.0/24"
CLIENT_ID = "phone@example.test"  # the client's IKE identity; the user is its EAP identity
USER, PASSWORD = "carol", "Carol's EAP p4ssword"
TUN = "mobike0"
SWAN_EAP_PLUGINS = "eap-identity eap-mschapv2 eap-tls"
TLS_USER = "carol@example.test"
TLS_SUBJECT = "C=CH, O=Mobike Test, CN=carol"


# --------------------------------------------------------------------------- set-up


def make_pki(lab: Lab, t: NatTopology, addresses: list[str]):
    pki = Pki(lab.dir / "pki")
    san = [f"DNS:{GW_ID}"] + [f"IP:{a}" for a in addresses]
    return pki, pki.issue("gw", GW_SUBJECT, san=san)


def write_secrets(lab: Lab, name: str, users: dict[str, str]) -> str:
    path = lab.dir / name
    path.write_text("# mobiked EAP users\n" + "".join(f'{json.dumps(u)} : EAP {json.dumps(p)}\n'
                                                      for u, p in users.items()))
    os.chmod(path, 0o600)
    return str(path)


def start_gateway(lab: Lab, ns, gw_cert, users: dict[str, str], method: str = "eap-mschapv2",
                  cacerts: list[str] | None = None, extra: dict | None = None) -> Mobiked:
    d = Mobiked(lab, ns, "mobiked-gw", dataplane="userspace")
    d.daemon_section += (
        "\n[[pool]]\n"
        f"name = {json.dumps(POOL)}\n"
        f"addrs = {json.dumps(POOL_PREFIX)}\n"
        f"dns = [{json.dumps(DNS)}]\n")
    auth = PubkeyAuth.of(gw_cert, [], local_id=GW_ID, send_cert="always")
    conn = MConn(NAME, local_id=GW_ID, remote_id=None, psk=None, remote_addrs=["%any"],
                 local_ts=[GW_NET], remote_ts=[], dpd_delay="10s",
                 local_auth="pubkey", remote_auth=method,
                 local_certs=auth.local_certs, local_key=auth.key, send_cert="always", cacerts=cacerts or [],
                 extra={"pools": [POOL], "eap_id": "%any", **(extra or {})})
    if users:
        conn.extra["eap_secrets"] = write_secrets(lab, "gw-eap.secrets", users)
    return d.start([conn])


def swan_client(lab: Lab, t: NatTopology, pki, password: str, user: str = USER, ns=None,
                addr: str | None = None, name: str = "charon-ini") -> Charon:
    """charon as the EAP-MSCHAPv2 road warrior user, in t.ini at t.INI_ADDR unless ns and addr."""
    charon = Charon(lab, ns or t.ini, name, retransmit_timeout=1.0, retransmit_tries=3,
                    log_levels={"ike": 2, "cfg": 2, "enc": 1, "knl": 2},
                    extra_plugins=SWAN_EAP_PLUGINS).start()
    conn = Conn(NAME, local_id=CLIENT_ID, remote_id=GW_ID, local_addrs=[addr or t.INI_ADDR],
                remote_addrs=[t.RES_ADDR], remote_ts=[GW_NET], dpd_delay=10, extra={"vips": "0.0.0.0"},
                local_auth="eap-mschapv2", remote_auth="pubkey", cacerts=[str(pki.root.cert)],
                local_eap_id=user, eap_secrets={user: password})
    charon.load([conn])
    return charon


def mobiked_client(lab: Lab, ns, pki, remote: str, user: str = USER, password: str = PASSWORD) -> Mobiked:
    d = Mobiked(lab, ns, "mobiked-client", dataplane="userspace")
    conn = MConn(NAME, local_id=CLIENT_ID, remote_id=GW_ID, psk=None, remote_addrs=[remote],
                 local_ts=[], remote_ts=[GW_NET], dpd_delay="10s",
                 local_auth="eap-mschapv2", remote_auth="pubkey", cacerts=[str(pki.root.cert)],
                 extra={"vips": ["0.0.0.0"], "eap_id": user,
                        "eap_secrets": write_secrets(lab, "client-eap.secrets", {user: password})})
    return d.start([conn])


def lan_host(lab: Lab, t: NatTopology, role: str, k: int) -> tuple:
    """One more host on the NAT's inside: namespace role with eth0 10.1.0.{k+2}/24, default
    via the NAT, wired to the NAT's in{k} (ini is .2 on in0) and routed there by a /32;
    forwarded and masqueraded (the NAT's rule covers 10.1.0.0/24) like ini."""
    ns, dev, addr = lab.namespace(role), f"in{k}", f"10.1.0.{k + 2}"
    lab.veth(ns, "eth0", t.nat, dev)
    ns.add_address("eth0", addr + "/24")
    ns.add_route("default", via=t.NAT_INSIDE)
    t.nat.add_route(addr + "/32", dev=dev)
    t.nat.iptables("-A", "FORWARD", "-i", dev, "-o", t.NAT_OUT_DEV, "-j", "ACCEPT")
    t.nat.iptables("-A", "FORWARD", "-i", t.NAT_OUT_DEV, "-o", dev, "-m", "conntrack",
                   "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
    return ns, addr


# --------------------------------------------------------------------------- views


def swan_sa(charon: Charon) -> dict | None:
    sa = charon.list_sas().get(NAME)
    if sa and sa.get("state") == "ESTABLISHED" and any(
            c.get("state") == "INSTALLED" for c in sa.get("child-sas", {}).values()):
        return sa
    return None


def mob_sa(d: Mobiked) -> dict | None:
    """d's ESTABLISHED IKE SA with its INSTALLED Child SAs in "kids"."""
    for sa in d.list_sas():
        kids = [c for c in sa.get("children", []) if c.get("state") == "INSTALLED"]
        if sa.get("state") == "ESTABLISHED" and kids:
            return dict(sa, kids=kids)
    return None


def the_pool(gw: Mobiked) -> dict:
    ps = json.loads(gw.ctl("list-pools", "--json").stdout)
    check(len(ps) == 1, f"list-pools: {ps}")
    return ps[0]


def ping(ns, src: str, what: str, count: int = 3) -> None:
    r = ns.run(["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2", "-I", src, "203.0.113.1"],
               check=False, timeout=20)
    check(r.returncode == 0, f"{what}: ping {src} -> 203.0.113.1 through the tunnel failed:\n{r.stdout}{r.stderr}")


def gateway_state(gw: Mobiked, what: str, user: str = USER) -> dict:
    """mobiked's one SA with carol: IKE identity, EAP identity, Child selectors, lease."""
    sa = wait_until(lambda: mob_sa(gw), 10, f"{what}: mobiked's IKE SA with an installed Child SA")
    check(len(gw.list_sas()) == 1, f"{what}: mobiked has {len(gw.list_sas())} IKE SAs, expected 1")
    check(sa.get("remote_id") == CLIENT_ID and sa.get("remote_eap_id") == user,
          f"{what}: mobiked shows remote_id {sa.get('remote_id')!r}, remote_eap_id {sa.get('remote_eap_id')!r}, "
          f"expected {CLIENT_ID!r} and {user!r}")
    kids = sa["kids"]
    check(len(kids) == 1 and kids[0].get("remote_ts") == [f"{VIP}/32"] and kids[0].get("local_ts") == [GW_NET],
          f"{what}: mobiked's Child SAs {[(c.get('local_ts'), c.get('remote_ts')) for c in kids]}, expected one "
          f"{GW_NET} === {VIP}/32")
    leases = the_pool(gw).get("leases", [])
    check(leases == [{"address": VIP, "identity": user, "online": True}],
          f"{what}: list-pools leases {leases}, expected {VIP} online for {user!r} (the EAP identity)")
    return sa


# --------------------------------------------------------------------------- cases


def swan_client_mschapv2(lab: Lab) -> None:
    t = nat_topology(lab)
    pki, gw_cert = make_pki(lab, t, [t.RES_ADDR])
    gw = start_gateway(lab, t.res, gw_cert, {USER: PASSWORD, "dave": "another one"})
    c = swan_client(lab, t, pki, PASSWORD)
    t0 = time.monotonic()
    r = c.swanctl("--initiate", "--child", NAME, "--timeout", "15", check=False, timeout=25)
    sa = wait_until(lambda: swan_sa(c), 10, f"charon ESTABLISHED (swanctl --initiate: {r.returncode} {r.stdout[-1500:]})")
    log(f"charon established in {time.monotonic() - t0:.2f}s")
    text = c.log_text()
    check(re.search(r"EAP method EAP_MSCHAPV2 succeeded, MSK established", text) is not None,
          f"charon does not log an EAP-MSCHAPv2 success with an MSK: {re.findall(r'.*EAP.*', text)[:12]}")
    ok = re.search(rf"authentication of '{re.escape(GW_ID)}' with (\S+) successful", text)
    check(ok is not None and "PSK" not in ok.group(1) and "EAP" not in ok.group(1),
          f"charon does not log a signature authentication of {GW_ID!r}: {re.findall(r'.*authentication of.*', text)}")
    msk_auth = re.search(rf"authentication of '{re.escape(GW_ID)}' with EAP successful", text)
    check(msk_auth is not None, "charon does not log the gateway's second AUTH, made with the EAP MSK: "
                                f"{re.findall(r'.*authentication of.*', text)}")
    v = sa.get("local-vips", [])
    check((v if isinstance(v, list) else [v]) == [VIP], f"charon's local-vips {v}, expected [{VIP}]")
    log(f"charon: gateway authenticated with {ok.group(1)}, then with EAP (the MSK); local-vips {v}")
    g0 = gateway_state(gw, "established")
    check(re.search(rf"EAP-MSCHAPv2 authenticated '{USER}'", gw.log_text()) is not None,
          "mobiked does not log the EAP-MSCHAPv2 authentication of carol")
    ping(t.ini, VIP, "established")
    log(f"mobiked: {g0['remote_id']} as EAP user {g0['remote_eap_id']}, lease {VIP}; ping through")

    # A Child SA rekey, then an IKE SA rekey, both by charon.
    child0 = g0["kids"][0]["spi_in"]
    c.rekey(child=NAME)
    wait_until(lambda: (s := mob_sa(gw)) and s["kids"][0]["spi_in"] != child0 and len(s["kids"]) == 1, 10,
               "mobiked to show one new Child SA after charon's Child SA rekey")
    ike0 = (g0["spi_i"], g0["spi_r"])
    c.rekey(ike=NAME)
    wait_until(lambda: (s := mob_sa(gw)) and (s["spi_i"], s["spi_r"]) != ike0 and len(gw.list_sas()) == 1, 10,
               "mobiked to show one new IKE SA after charon's IKE SA rekey")
    g1 = gateway_state(gw, "after the rekeys")
    ping(t.ini, VIP, "after the rekeys")
    log(f"after a Child and an IKE rekey: IKE SPIs {ike0} -> {(g1['spi_i'], g1['spi_r'])}, "
        f"still {g1['remote_eap_id']!r} with {VIP}; ping through")


def swan_client_wrong_password(lab: Lab) -> None:
    t = nat_topology(lab)
    pki, gw_cert = make_pki(lab, t, [t.RES_ADDR])
    gw = start_gateway(lab, t.res, gw_cert, {USER: PASSWORD})
    c = swan_client(lab, t, pki, "not " + PASSWORD)
    r = c.swanctl("--initiate", "--child", NAME, "--timeout", "10", check=False, timeout=20)
    check(r.returncode != 0, f"swanctl --initiate succeeded with the wrong password:\n{r.stdout[-800:]}")
    wait_until(lambda: re.search(rf"password of '{USER}' does not match", gw.log_text()), 5,
               "mobiked to log that carol's password does not match")
    text = c.log_text()
    check(re.search(r"EAP_FAILURE|received EAP_FAILURE|EAP method EAP_MSCHAPV2 failed", text) is not None,
          f"charon does not log the EAP failure: {re.findall(r'.*EAP.*', text)[-8:]}")
    wait_until(lambda: not gw.list_sas(), 5, "mobiked to hold no SA after the failed authentication")
    check(swan_sa(c) is None, "charon holds an SA after the failed authentication")
    check(the_pool(gw).get("leases") == [], f"the pool has leases: {the_pool(gw)}")
    st = gw.stats()
    log(f"wrong password refused: mobiked {st['ike']}, charon: "
        f"{[x for x in re.findall(r'.*EAP.*', text)][-2:]}")


def swan_gateway(lab: Lab, t: NatTopology, gw_cert) -> Charon:
    charon = Charon(lab, t.res, "charon-gw", retransmit_timeout=1.0, retransmit_tries=3,
                    log_levels={"ike": 2, "cfg": 2, "enc": 1, "knl": 2},
                    extra_plugins=SWAN_EAP_PLUGINS).start()
    auth = PubkeyAuth.of(gw_cert, [], local_id=GW_ID)
    conn = Conn(NAME, local_id=GW_ID, remote_id=None, local_ts=[GW_NET], remote_ts=[], dpd_delay=10,
                local_auth="pubkey", remote_auth="eap-mschapv2", local_certs=auth.local_certs, local_key=auth.key,
                send_cert="always", remote_eap_id="%any", eap_secrets={USER: PASSWORD}, extra={"pools": POOL})
    charon.load([conn])  # stages the certificate and key
    charon.swanctl_path.write_text(
        swanctl_conf([conn]) + f"pools {{\n  {POOL} {{\n    addrs = {POOL_PREFIX}\n    dns = {DNS}\n  }}\n}}\n")
    charon.swanctl("--load-all", "--file", str(charon.swanctl_path))
    return charon


def client_has_vip(client: Mobiked, what: str) -> dict:
    sa = wait_until(lambda: mob_sa(client), 15, f"{what}: {client.name} ESTABLISHED with a Child SA")
    text = client.log_text()
    check(re.search(rf"EAP-MSCHAPv2 succeeded as '{USER}'", text) is not None,
          f"{what}: {client.name} does not log its EAP-MSCHAPv2 success")
    check(sa["kids"][0].get("local_ts") == [f"{VIP}/32"],
          f"{what}: {client.name}'s Child SA local_ts {sa['kids'][0].get('local_ts')}, expected [{VIP}/32]")
    wait_until(lambda: re.search(rf"\binet {re.escape(VIP)}/32\b",
                                 client.ns.ip("-o", "-4", "addr", "show", "dev", TUN, check=False).stdout),
               5, f"{what}: {VIP} on {TUN}")
    return sa


def mobiked_client_swan_gw(lab: Lab) -> None:
    t = nat_topology(lab)
    pki, gw_cert = make_pki(lab, t, [t.RES_ADDR])
    gw = swan_gateway(lab, t, gw_cert)
    client = mobiked_client(lab, t.ini, pki, t.RES_ADDR)
    t0 = time.monotonic()
    client.ctl("initiate", NAME)
    sa = client_has_vip(client, "mobiked client")
    log(f"mobiked client established in {time.monotonic() - t0:.2f}s: {sa['local']} -> {sa['remote']}")
    ssa = wait_until(lambda: swan_sa(gw), 5, "charon-gw ESTABLISHED with a CHILD_SA")
    check(ssa.get("remote-eap-id") == USER and ssa.get("remote-id") == CLIENT_ID,
          f"charon-gw shows remote-id {ssa.get('remote-id')!r}, remote-eap-id {ssa.get('remote-eap-id')!r}, "
          f"expected {CLIENT_ID!r} and {USER!r}")
    text = gw.log_text()
    check(re.search(r"EAP method EAP_MSCHAPV2 succeeded, MSK established", text) is not None,
          f"charon-gw does not log an EAP-MSCHAPv2 success: {re.findall(r'.*EAP.*', text)[:12]}")
    ping(t.ini, VIP, "mobiked client")
    log(f"charon-gw: remote-eap-id {ssa.get('remote-eap-id')!r}; mobiked pings from {VIP}")


def view(sa: dict) -> dict:
    k = sa["kids"][0]
    return {"local": sa["local"]["addr"], "remote": sa["remote"]["addr"], "ike": (sa["spi_i"], sa["spi_r"]),
            "child": (k["spi_in"], k["spi_out"]), "local_ts": k.get("local_ts"), "remote_ts": k.get("remote_ts")}


def mobiked_pair_switch(lab: Lab) -> None:
    t = make_topology(lab, 1)  # the gateway on .10 (dialled) and .20, behind the MASQUERADE NAT
    pki, gw_cert = make_pki(lab, t, [OLD, NEW])
    gw = start_gateway(lab, t.res, gw_cert, {USER: PASSWORD})
    client = mobiked_client(lab, t.ini, pki, OLD)
    client.ctl("initiate", NAME)
    c0 = view(client_has_vip(client, "before the switch"))
    g0 = view(gateway_state(gw, "before the switch"))
    check(c0["remote"] == OLD and g0["local"] == OLD, f"not on {OLD} at first: client {c0}, gateway {g0}")
    ping(t.ini, VIP, "before the switch")
    est0 = (gw.stats()["ike"]["established"], client.stats()["ike"]["established"])
    gw.ctl("switch", "--to", NEW, "--all")
    wait_until(lambda: (s := mob_sa(client)) and s["remote"]["addr"] == NEW and (g := mob_sa(gw))
               and g["local"]["addr"] == NEW, 10, f"both sides on {NEW} after the switch")
    c1, g1 = view(mob_sa(client)), view(gateway_state(gw, "after the switch"))
    check(c1["ike"] == c0["ike"] and c1["child"] == c0["child"] and g1["ike"] == g0["ike"]
          and g1["child"] == g0["child"], f"SPIs changed in the switch: client {c0} -> {c1}, gateway {g0} -> {g1}")
    check(c1["local_ts"] == [f"{VIP}/32"], f"the client's virtual IP changed: {c1['local_ts']}")
    est1 = (gw.stats()["ike"]["established"], client.stats()["ike"]["established"])
    check(est1 == est0, f"an IKE SA was established during the switch (no new authentication expected): "
                        f"{est0} -> {est1}")
    ping(t.ini, VIP, "after the switch")
    log(f"switch {OLD} -> {NEW}: SPIs {c1['ike']} / {c1['child']} kept, {VIP} kept, EAP identity "
        f"{USER!r} kept; ping through")


def client_cert(pki):
    return pki.issue("carol", TLS_SUBJECT, key_type="rsa3072", san=[f"email:{TLS_USER}"])


# strongSwan 5.9's TLS stack negotiates TLS 1.2 unless told otherwise (its libtls
# version_min / version_max in strongswan.conf, 1.2 both by default); mobiked offers 1.2
# and 1.3. A version forces charon to exactly that one.
SWAN_TLS_DEFAULT = "1.2"


def swan_tls_options(version: str | None) -> dict | None:
    return {"version_min": version, "version_max": version} if version else None


def mobiked_tls_options(charon: Charon, version: str | None) -> dict:
    """mobiked's connection keys for TLS `version` with this charon: strongSwan before
    5.9.10 does EAP-TLS over TLS 1.3 as before RFC 9190 (TLS 1.2's exporter label for
    the MSK, no commitment message; 5.9.8's client crashes on one), so mobiked is told
    eap_tls13 = "pre-rfc9190" there; newer charons and TLS 1.2 take mobiked's defaults."""
    if version != "1.3":
        return {}
    out = charon.swanctl("--version", "--daemon").stdout
    m = re.search(r"\b(\d+)\.(\d+)\.(\d+)\b", out)
    check(m is not None, f"no version in swanctl --version --daemon: {out!r}")
    return {"eap_tls13": "pre-rfc9190"} if tuple(map(int, m.groups())) < (5, 9, 10) else {}


def check_tls_version(charon: Charon, d: Mobiked, version: str | None) -> str:
    """Both ends say they negotiated TLS `version` (charon's default when None) and the
    same cipher suite: charon's tls log ("negotiated TLS 1.3 using suite TLS_AES_...")
    and mobiked's ("EAP-TLS: negotiated TLS 1.3 with TLS_AES_..."). Returns a summary."""
    want = version or SWAN_TLS_DEFAULT
    text = charon.log_text()
    theirs = re.findall(r"negotiated TLS ([0-9.]+) using suite (\w+)", text)
    check(len(theirs) == 1, f"{charon.name} does not log one TLS negotiation: {theirs} "
                            f"{re.findall(r'.*(?:TLS|tls).*', text)[:12]}")
    ours = re.findall(r"EAP-TLS: negotiated TLS ([0-9.]+) with (\w+)", d.log_text())
    check(len(ours) == 1, f"{d.name} does not log one TLS negotiation: {ours}")
    check(theirs[0][0] == want and ours[0][0] == want,
          f"TLS {want} expected: {charon.name} negotiated TLS {theirs[0][0]}, {d.name} TLS {ours[0][0]}")
    check(theirs[0][1] == ours[0][1], f"cipher suites differ: {charon.name} {theirs[0][1]}, {d.name} {ours[0][1]}")
    return f"TLS {want} with {ours[0][1]} on both ends"


def swan_client_eap_tls(lab: Lab, version: str | None) -> None:
    """charon as the EAP-TLS road warrior against the mobiked gateway, its TLS stack held
    to `version` ("1.3"; None: its default)."""
    t = nat_topology(lab)
    pki, gw_cert = make_pki(lab, t, [t.RES_ADDR])
    cl = client_cert(pki)
    c = Charon(lab, t.ini, "charon-ini", retransmit_timeout=1.0, retransmit_tries=3,
               log_levels={"ike": 2, "cfg": 2, "enc": 1, "knl": 2, "tls": 2},
               extra_plugins=SWAN_EAP_PLUGINS, libtls=swan_tls_options(version)).start()
    gw = start_gateway(lab, t.res, gw_cert, {}, method="eap-tls", cacerts=[str(pki.root.cert)],
                       extra=mobiked_tls_options(c, version))
    auth = PubkeyAuth.of(cl, [pki.root])
    c.load([Conn(NAME, local_id=CLIENT_ID, remote_id=GW_ID, local_addrs=[t.INI_ADDR], remote_addrs=[t.RES_ADDR],
                 remote_ts=[GW_NET], dpd_delay=10, extra={"vips": "0.0.0.0"},
                 local_auth="eap-tls", remote_auth="pubkey", local_certs=auth.local_certs, local_key=auth.key,
                 cacerts=[str(pki.root.cert)], local_eap_id=TLS_USER)])
    r = c.swanctl("--initiate", "--child", NAME, "--timeout", "15", check=False, timeout=25)
    wait_until(lambda: swan_sa(c), 10, f"charon ESTABLISHED (swanctl --initiate: {r.returncode} {r.stdout[-1500:]})")
    text = c.log_text()
    check(re.search(r"EAP method EAP_TLS succeeded, MSK established", text) is not None,
          f"charon does not log an EAP-TLS success with an MSK: {re.findall(r'.*(?:EAP|TLS).*', text)[:16]}")
    check(re.search(rf"authentication of '{re.escape(GW_ID)}' with EAP successful", text) is not None,
          f"charon does not log the gateway's MSK authentication: {re.findall(r'.*authentication of.*', text)}")
    tls = check_tls_version(c, gw, version)
    g = gateway_state(gw, "EAP-TLS", user=TLS_USER)
    ping(t.ini, VIP, "EAP-TLS")
    log(f"EAP-TLS ({tls}): mobiked shows {g['remote_eap_id']!r} with {VIP}; ping through")


def swan_client_tls(lab: Lab) -> None:
    swan_client_eap_tls(lab, None)


def swan_client_tls13(lab: Lab) -> None:
    swan_client_eap_tls(lab, "1.3")


def mobiked_client_eap_tls_swan_gw(lab: Lab, version: str | None) -> None:
    """mobiked as the EAP-TLS client against a charon gateway whose TLS stack is held to
    `version` ("1.3"; None: its default)."""
    t = nat_topology(lab)
    pki, gw_cert = make_pki(lab, t, [t.RES_ADDR])
    cl = client_cert(pki)
    charon = Charon(lab, t.res, "charon-gw", retransmit_timeout=1.0, retransmit_tries=3,
                    log_levels={"ike": 2, "cfg": 2, "enc": 1, "knl": 2, "tls": 2},
                    extra_plugins=SWAN_EAP_PLUGINS, libtls=swan_tls_options(version)).start()
    auth = PubkeyAuth.of(gw_cert, [], local_id=GW_ID)
    conn = Conn(NAME, local_id=GW_ID, remote_id=None, local_ts=[GW_NET], remote_ts=[], dpd_delay=10,
                local_auth="pubkey", remote_auth="eap-tls", local_certs=auth.local_certs, local_key=auth.key,
                cacerts=[str(pki.root.cert)], send_cert="always", remote_eap_id="%any", extra={"pools": POOL})
    charon.load([conn])
    charon.swanctl_path.write_text(
        swanctl_conf([conn]) + f"pools {{\n  {POOL} {{\n    addrs = {POOL_PREFIX}\n    dns = {DNS}\n  }}\n}}\n")
    charon.swanctl("--load-all", "--file", str(charon.swanctl_path))
    d = Mobiked(lab, t.ini, "mobiked-client", dataplane="userspace")
    cauth = PubkeyAuth.of(cl, [pki.root])
    d.start([MConn(NAME, local_id=CLIENT_ID, remote_id=GW_ID, psk=None, remote_addrs=[t.RES_ADDR],
                   local_ts=[], remote_ts=[GW_NET], dpd_delay="10s", local_auth="eap-tls", remote_auth="pubkey",
                   local_certs=cauth.local_certs, local_key=cauth.key, cacerts=[str(pki.root.cert)],
                   extra={"vips": ["0.0.0.0"], "eap_id": TLS_USER, **mobiked_tls_options(charon, version)})])
    d.ctl("initiate", NAME)
    sa = wait_until(lambda: mob_sa(d), 15, f"{d.name} ESTABLISHED with a Child SA")
    check(re.search(rf"EAP-TLS succeeded as '{re.escape(TLS_USER)}'", d.log_text()) is not None,
          f"{d.name} does not log its EAP-TLS success")
    check(sa["kids"][0].get("local_ts") == [f"{VIP}/32"], f"mobiked's local_ts {sa['kids'][0].get('local_ts')}")
    ssa = wait_until(lambda: swan_sa(charon), 5, "charon-gw ESTABLISHED with a CHILD_SA")
    check(ssa.get("remote-eap-id") == TLS_USER,
          f"charon-gw shows remote-eap-id {ssa.get('remote-eap-id')!r}, expected {TLS_USER!r}")
    text = charon.log_text()
    check(re.search(r"EAP method EAP_TLS succeeded, MSK established", text) is not None,
          f"charon-gw does not log an EAP-TLS success: {re.findall(r'.*(?:EAP|TLS).*', text)[:16]}")
    tls = check_tls_version(charon, d, version)
    wait_until(lambda: re.search(rf"\binet {re.escape(VIP)}/32\b",
                                 d.ns.ip("-o", "-4", "addr", "show", "dev", TUN, check=False).stdout),
               5, f"{VIP} on {TUN}")
    ping(t.ini, VIP, "mobiked EAP-TLS client")
    log(f"charon-gw ({tls}): remote-eap-id {ssa.get('remote-eap-id')!r}; mobiked pings from {VIP}")


def mobiked_client_tls_swan_gw(lab: Lab) -> None:
    mobiked_client_eap_tls_swan_gw(lab, None)


def mobiked_client_tls13_swan_gw(lab: Lab) -> None:
    mobiked_client_eap_tls_swan_gw(lab, "1.3")


def installed(sa: dict) -> dict | None:
    """sa if ESTABLISHED with INSTALLED Child SAs (in "kids"), as mob_sa."""
    kids = [c for c in sa.get("children", []) if c.get("state") == "INSTALLED"]
    return dict(sa, kids=kids) if sa.get("state") == "ESTABLISHED" and kids else None


def many_clients(lab: Lab) -> None:
    t = nat_topology(lab)
    pki, gw_cert = make_pki(lab, t, [t.RES_ADDR])
    users = {USER: PASSWORD, "dave": "Dave's 0ther secret", "erin": "erin-EAP-pw-3"}
    gw = start_gateway(lab, t.res, gw_cert, users)
    (dave_ns, dave_addr), (erin_ns, _), (bad_ns, bad_addr) = (
        lan_host(lab, t, role, k) for k, role in ((1, "dave"), (2, "erin"), (3, "mallory")))
    carol = swan_client(lab, t, pki, PASSWORD)
    dave = swan_client(lab, t, pki, users["dave"], "dave", dave_ns, dave_addr, "charon-dave")
    bad = swan_client(lab, t, pki, "not " + PASSWORD, USER, bad_ns, bad_addr, "charon-mallory")
    erin = mobiked_client(lab, erin_ns, pki, t.RES_ADDR, "erin", users["erin"])
    t0 = time.monotonic()
    with ThreadPoolExecutor(3) as ex:  # all at once: swanctl --initiate waits for its SA
        runs = {c: ex.submit(c.swanctl, "--initiate", "--child", NAME, "--timeout", "15", check=False, timeout=25)
                for c in (carol, dave, bad)}
        erin.ctl("initiate", NAME)
        done = {c: f.result() for c, f in runs.items()}
    swan = {}
    for user, c in ((USER, carol), ("dave", dave)):
        r = done[c]
        swan[user] = wait_until(lambda: swan_sa(c), 10, f"{c.name} ESTABLISHED (swanctl --initiate: "
                                                         f"{r.returncode} {r.stdout[-1500:]})")
    esa = wait_until(lambda: mob_sa(erin), 10, "mobiked-client (erin) ESTABLISHED with a Child SA")
    log(f"carol, dave and erin established in {time.monotonic() - t0:.2f}s")
    check(done[bad].returncode != 0 and swan_sa(bad) is None,
          f"carol's wrong password was accepted:\n{done[bad].stdout[-800:]}")
    wait_until(lambda: re.search(rf"password of '{USER}' does not match", gw.log_text()), 5,
               "mobiked to log that carol's (wrong) password does not match")

    # The clients' virtual IPs and their own Child SAs' selectors.
    vips = {}
    for user, sa in swan.items():
        v = sa.get("local-vips", [])
        vips[user] = (v if isinstance(v, list) else [v])[0] if v else None
        kids = list(sa.get("child-sas", {}).values())
        check(len(kids) == 1 and kids[0].get("local-ts") == [f"{vips[user]}/32"],
              f"{user}'s charon: local-vips {v}, Child SAs' local-ts {[k.get('local-ts') for k in kids]}")
    ts = esa["kids"][0].get("local_ts") or [""]
    vips["erin"] = ts[0].removesuffix("/32")
    check(len(esa["kids"]) == 1 and ts == [f"{vips['erin']}/32"], f"erin's Child SA local_ts {ts}")
    check(len(set(vips.values())) == 3 and all(v and v.startswith("10.3.0.") for v in vips.values()),
          f"the clients' virtual IPs are not three distinct pool addresses: {vips}")

    # The gateway: three IKE SAs from the NAT's public address on three ports, one per user.
    sas = wait_until(lambda: len(v := [x for sa in gw.list_sas() if (x := installed(sa))]) == 3 and v, 10,
                     "mobiked to show three ESTABLISHED IKE SAs with Child SAs")
    check(len(gw.list_sas()) == 3, f"mobiked has {len(gw.list_sas())} IKE SAs, expected 3")
    by_user = {sa.get("remote_eap_id"): sa for sa in sas}
    check(sorted(by_user) == sorted(users), f"mobiked's remote_eap_ids {sorted(map(str, by_user))}, expected "
                                            f"{sorted(users)}")
    remotes = {u: (sa["remote"]["addr"], sa["remote"]["port"]) for u, sa in by_user.items()}
    check(all(a == t.NAT_OUTSIDE for a, _ in remotes.values()) and len(set(remotes.values())) == 3
          and all(sa["nat_remote"] for sa in sas),
          f"mobiked's peers {remotes}, expected {t.NAT_OUTSIDE} on three ports, behind a NAT")
    for user, sa in by_user.items():
        kids = sa["kids"]
        check(sa.get("remote_id") == CLIENT_ID and len(kids) == 1
              and kids[0].get("remote_ts") == [f"{vips[user]}/32"] and kids[0].get("local_ts") == [GW_NET],
              f"mobiked's SA with {user}: remote_id {sa.get('remote_id')!r}, Child SAs "
              f"{[(c.get('local_ts'), c.get('remote_ts')) for c in kids]}, expected {GW_NET} === {vips[user]}/32")
    leases = sorted(the_pool(gw).get("leases", []), key=lambda x: str(x.get("identity")))
    want = [{"address": vips[u], "identity": u, "online": True} for u in sorted(vips)]
    check(leases == want, f"list-pools leases {leases}, expected {want}")

    # Traffic: each from its own virtual IP, through its own tunnel.
    wait_until(lambda: re.search(rf"\binet {re.escape(vips['erin'])}/32\b",
                                 erin_ns.ip("-o", "-4", "addr", "show", "dev", TUN, check=False).stdout),
               5, f"{vips['erin']} on erin's {TUN}")
    for user, ns in ((USER, t.ini), ("dave", dave_ns), ("erin", erin_ns)):
        ping(ns, vips[user], user)
    log("mobiked: " + ", ".join(f"{u} {vips[u]} from {a}:{p}" for u, (a, p) in sorted(remotes.items()))
        + "; carol's wrong password refused; three pings through")


CASES = {
    "swan_client_mschapv2": (swan_client_mschapv2, "strongSwan EAP-MSCHAPv2 road warrior against a mobiked "
                             "gateway with a certificate, a pool and rekeys", True),
    "swan_client_wrong_password": (swan_client_wrong_password, "strongSwan EAP-MSCHAPv2 with a wrong password "
                                   "is refused by mobiked", True),
    "mobiked_client_swan_gw": (mobiked_client_swan_gw, "mobiked EAP-MSCHAPv2 client against a strongSwan gateway",
                               True),
    "mobiked_pair_switch": (mobiked_pair_switch, "mobiked EAP-MSCHAPv2 client keeps its SAs, virtual IP and "
                            "identity through the gateway's switch", False),
    "swan_client_tls": (swan_client_tls, "strongSwan EAP-TLS road warrior against a mobiked gateway", True),
    "mobiked_client_tls_swan_gw": (mobiked_client_tls_swan_gw, "mobiked EAP-TLS client against a strongSwan gateway",
                                   True),
    "swan_client_tls13": (swan_client_tls13, "strongSwan EAP-TLS road warrior held to TLS 1.3 against a mobiked "
                          "gateway", True),
    "mobiked_client_tls13_swan_gw": (mobiked_client_tls13_swan_gw, "mobiked EAP-TLS client against a strongSwan "
                                     "gateway held to TLS 1.3", True),
    "many_clients": (many_clients, "three EAP-MSCHAPv2 road warriors (two strongSwan, one mobiked) behind one "
                     "NAT on one mobiked gateway connection and pool, and a wrong password beside them", True),
}


def requires(strongswan: bool) -> None:
    require_netns()
    if strongswan:
        require_strongswan()
        if not Path("/usr/lib/ipsec/plugins/libstrongswan-eap-mschapv2.so").exists():
            raise Skip("strongSwan's eap-mschapv2 plugin (Debian package libcharon-extauth-plugins) is missing")
    require_commands("iptables", "ping", "openssl")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    param = netns_param(CASES)
    fn, title, swan = CASES[param]
    run_test(fn, title, timeout=90, requires=lambda: requires(swan))
