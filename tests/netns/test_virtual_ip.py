#!/usr/bin/env python3
"""Virtual IPs from a mobiked gateway's address pool (IKE_AUTH configuration payload,
RFC 7296 section 2.19; split DNS, RFC 8598) to strongSwan road-warrior clients through a
Linux MASQUERADE NAT, one ctest per case:

netns-params: swan_client_psk swan_client_two swan_client_cert mobiked_client_swan_gw mobiked_pair_switch mobiked_pair_trap_children

    ini  (10.1.0.2, client 1) --+
                                 nat (in0 10.1.0.1, in1 10.1.1.1 | out0 198.51.100.2) -- res (198.51.100.10, gateway)
    ini2 (10.1.1.2, client 2) --+                                                         203.0.113.1/32 on lo

The gateway is mobiked with its userspace data plane, a [[pool]] "rw" 10.3.0.0/24
(10.3.0.1 - 10.3.0.254) with dns 10.3.0.53 and split_dns corp.example.test, and one
connection with pools = ["rw"], local_ts 203.0.113.0/24 and no remote_ts ("dynamic":
narrowed to the address it assigns), PSK authentication of any client identity. Each
client is charon (kernel-libipsec) with vips = 0.0.0.0, PSK, local_ts left "dynamic"
(its virtual IP) and remote_ts 203.0.113.0/24.

Cases:
    swan_client_psk  one client: established; charon got 10.3.0.1 (swanctl --list-sas
                     local-vips, and the address on a device in its namespace); charon's
                     log shows the CFG_REPLY with the address, the DNS server and the
                     split-DNS domain (CPRP(ADDR DNS ...) and "processing ... attribute"
                     lines); mobiked's Child SA has remote_ts ["10.3.0.1/32"];
                     mobikectl list-pools --json shows one online lease 10.3.0.1 for the
                     client's identity; a ping from 10.3.0.1 to 203.0.113.1 gets replies.
                     Then the client terminates: the lease goes offline (online 0,
                     offline 1); the client initiates again and gets 10.3.0.1 back, and
                     the ping works again.
    swan_client_two  two clients with different identities, one in each client
                     namespace behind the NAT: they get 10.3.0.1 and 10.3.0.2 (in the
                     order they connect), mobiked's Child SAs are narrowed to each,
                     list-pools shows two online leases with the right identities, and
                     both clients ping the gateway's inner address at the same time.
    swan_client_cert the headline road warrior with certificates instead of the PSK, on a
                     PKI made by openssl per run (pki.py): a root CA and ECDSA P-256 end
                     entities. The client's certificate is "C=CH, O=Mobike Test,
                     CN=client.example.test" with SAN email:client@example.test and charon
                     sets id = client@example.test (remote id gw.example.test, cacerts the
                     root); the gateway authenticates with auth = "pubkey", its certificate
                     "C=CH, O=Mobike Test, CN=gw.example.test" (SANs DNS:gw.example.test,
                     IP:198.51.100.10) as local_id gw.example.test, cacerts the root,
                     send_cert = "always", remote_id "*@example.test" (a wildcard) and
                     pools = ["rw"]. Checked: established; charon got 10.3.0.1 (local-vips,
                     the address in its namespace, the CFG_REPLY as above) and logs a
                     signature (not PSK) authentication of gw.example.test with its
                     certificate; both sides show the identities (mobiked's list-sas
                     remote_id client@example.test, local_id gw.example.test); mobiked's
                     Child SA has remote_ts ["10.3.0.1/32"]; list-pools shows the one lease
                     10.3.0.1 online for client@example.test; a ping from 10.3.0.1 to
                     203.0.113.1 gets replies. Then a Child SA rekey by charon and one by
                     mobiked (mobikectl rekey --child): each time one new Child SA on both
                     sides, still 10.3.0.1/32 === 203.0.113.0/24, the same IKE SA, the lease
                     still online and the only one, and the ping works.

mobiked as the virtual-IP client (vips = ["0.0.0.0"], userspace data plane, PSK,
remote_ts 203.0.113.0/24, no local_ts: it offers TSi 0.0.0.0/0 and the gateway narrows it):

    mobiked_client_swan_gw  the gateway is charon (kernel-libipsec) with a swanctl pool
                     rw { addrs = 10.3.0.0/24 dns = 10.3.0.53 } and pools = rw, local_ts
                     203.0.113.0/24 (203.0.113.1 on its lo), remote_ts "dynamic". mobiked
                     logs "virtual IP 10.3.0.1 assigned" and "... installed on mobike0",
                     its Child SA's local_ts is ["10.3.0.1/32"], 10.3.0.1 is on mobike0;
                     charon shows remote-vips 10.3.0.1 (or an online lease in
                     --list-pools --leases); `ip route get 203.0.113.1` in the client's
                     namespace says src 10.3.0.1 and a ping to 203.0.113.1 WITHOUT -I gets
                     replies (the route's preferred source is the virtual IP). Then the
                     client terminates: 10.3.0.1 leaves mobike0.
    mobiked_pair_switch  the gateway is mobiked with the pool "rw" above and two addresses,
                     198.51.100.10 (dialled) and .20 (the switch scenarios' NAT topology);
                     with a ping from 10.3.0.1 running, the gateway's operator moves every
                     SA: `mobikectl switch --to 198.51.100.20 --all`. Afterwards both sides
                     use .20, the IKE and Child SPIs are the same (no rekey, no new SA on
                     either side), the client's virtual IP is still 10.3.0.1 (Child SA
                     local_ts, mobike0, lease online) and the ping gets replies after the
                     switch through the NAT's new mapping to .20.
    mobiked_pair_trap_children  the gateway is mobiked as in swan_client_psk; the client
                     mobiked has start = "trap" and two children with no local_ts,
                     "rw" (remote_ts 203.0.113.0/25) and "rw-hi" (203.0.113.128/25).
                     A plain ping to 203.0.113.1 fires the first trap: the IKE SA comes
                     up with "rw" and the virtual IP on mobike0; then a plain ping (no
                     -I) to 203.0.113.1 gets replies from 10.3.0.1. A plain ping to
                     203.0.113.130 (nothing answers there) fires the second trap: a
                     CREATE_CHILD_SA on the same IKE SA makes "rw-hi" with local_ts
                     ["10.3.0.1/32"] (the virtual IP, not the client's 10.1.0.2), the
                     gateway's second Child SA has remote_ts ["10.3.0.1/32"] and local_ts
                     [203.0.113.128/25]; `ip route get 203.0.113.130` says mobike0 from
                     10.3.0.1, and further pings to .130 leave by "rw-hi" and arrive on
                     the gateway's second Child SA (packet counters). One lease, one
                     virtual IP assignment.

Run by hand (root, a Release build):
    MOBIKE_BUILD_DIR=build/release python3 tests/netns/test_virtual_ip.py swan_client_psk
"""

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Charon, Conn, Lab, Namespace, check, child_sas, find_binary, log, netns_param,  # noqa: E402
                   require_commands, require_netns, require_strongswan, run_test, swanctl_conf, wait_until)
from peers import PubkeyAuth  # noqa: E402
from pki import Pki  # noqa: E402
from scenario import Ping  # noqa: E402
from switch_scenarios import NEW, OLD, make_topology, mapping_to, nat_mappings  # noqa: E402
from topology import RES_ADDR, RES_INNER, NatTopology, nat_topology, setup_nat  # noqa: E402

NAME = "rw"
POOL = "rw"
POOL_PREFIX = "10.3.0.0/24"
POOL_FIRST, POOL_LAST, POOL_SIZE = "10.3.0.1", "10.3.0.254", 254
DNS = "10.3.0.53"
SPLIT_DNS = "corp.example.test"
GW_ID = "gw@mobike.test"
GW_NET = "203.0.113.0/24"  # the gateway's inner network; 203.0.113.1 is on its lo
PSK = "mobike-test-psk-0123456789"

INI2_ADDR, NAT_INSIDE2 = "10.1.1.2", "10.1.1.1"


# --------------------------------------------------------------------------- set-up


def add_second_client(lab: Lab, t: NatTopology) -> Namespace:
    """A second client namespace behind the same NAT: ini2 eth0 10.1.1.2/24 -- nat in1
    10.1.1.1/24, masqueraded to the NAT's one public address like the first."""
    ini2 = lab.namespace("ini2")
    lab.veth(ini2, "eth0", t.nat, "in1")
    ini2.add_address("eth0", INI2_ADDR + "/24")
    ini2.add_route("default", via=NAT_INSIDE2)
    t.nat.add_address("in1", NAT_INSIDE2 + "/24")
    setup_nat(t.nat, "10.1.1.0/24", t.NAT_OUT_DEV, "in1")
    return ini2


def start_gateway(lab: Lab, t: NatTopology, auth: PubkeyAuth | None = None) -> Mobiked:
    """auth: certificate authentication (its local_id, remote_id, send_cert as given)
    instead of the PSK of any client identity."""
    d = Mobiked(lab, t.res, "mobiked-gw", dataplane="userspace")
    d.daemon_section += (
        "\n[[pool]]\n"
        f"name = {json.dumps(POOL)}\n"
        f"addrs = {json.dumps(POOL_PREFIX)}\n"
        f"dns = [{json.dumps(DNS)}]\n"
        f"split_dns = [{json.dumps(SPLIT_DNS)}]\n")
    # remote_id left out: any client identity with the PSK; no remote_ts: "dynamic".
    conn = MConn(NAME, local_id=GW_ID, remote_id=None, psk=PSK, remote_addrs=["%any"],
                 local_ts=[GW_NET], remote_ts=[], dpd_delay="10s", extra={"pools": [POOL]})
    if auth is not None:
        conn.local_id, conn.remote_id = auth.local_id, auth.remote_id
        conn.auth, conn.psk = "pubkey", None
        conn.local_certs, conn.local_key = auth.local_certs, auth.key
        conn.cacerts, conn.crls = list(auth.cacerts), list(auth.crls)
        conn.send_cert, conn.send_certreq = auth.send_cert, auth.send_certreq
    return d.start([conn])


def client(lab: Lab, ns: Namespace, name: str, ident: str, local_addr: str, t: NatTopology,
           auth: PubkeyAuth | None = None) -> Charon:
    """auth: certificate authentication (local_id ident, remote_id auth.remote_id)
    instead of the PSK."""
    charon = Charon(lab, ns, name, retransmit_timeout=1.0, retransmit_tries=3,
                    log_levels={"ike": 2, "cfg": 2, "enc": 1, "knl": 2}).start()
    conn = Conn(NAME, local_id=ident, remote_id=GW_ID, psk=PSK,
                local_addrs=[local_addr], remote_addrs=[t.RES_ADDR],
                remote_ts=[GW_NET], dpd_delay=10, extra={"vips": "0.0.0.0"})
    if auth is not None:
        conn.remote_id = auth.remote_id
        conn.local_auth = conn.remote_auth = "pubkey"
        conn.local_certs, conn.local_key = auth.local_certs, auth.key
        conn.cacerts, conn.crls = list(auth.cacerts), list(auth.crls)
        conn.send_cert, conn.send_certreq = auth.send_cert, auth.send_certreq
    charon.load([conn])
    return charon


# --------------------------------------------------------------------------- views


def pools(gw: Mobiked) -> list[dict]:
    return json.loads(gw.ctl("list-pools", "--json").stdout)


def the_pool(gw: Mobiked) -> dict:
    ps = pools(gw)
    check(len(ps) == 1 and ps[0].get("name") == POOL, f"list-pools shows {ps}, expected the one pool {POOL!r}")
    return ps[0]


def gw_sa_for(gw: Mobiked, ident: str) -> dict | None:
    """mobiked's ESTABLISHED IKE SA with the client `ident` and an INSTALLED Child SA."""
    for sa in gw.list_sas():
        if sa.get("state") == "ESTABLISHED" and sa.get("remote_id") == ident and any(
                c.get("state") == "INSTALLED" for c in sa.get("children", [])):
            return sa
    return None


def swan_sa(charon: Charon) -> dict | None:
    sa = charon.list_sas().get(NAME)
    if sa and sa.get("state") == "ESTABLISHED" and any(
            c.get("state") == "INSTALLED" for c in sa.get("child-sas", {}).values()):
        return sa
    return None


def vips_of(sa: dict) -> list[str]:
    v = sa.get("local-vips", [])
    return [v] if isinstance(v, str) else list(v)


# --------------------------------------------------------------------------- steps


def connect(gw: Mobiked, charon: Charon, ident: str, want_vip: str, what: str) -> None:
    """The client initiates and gets want_vip; both sides agree on it."""
    t0 = time.monotonic()
    r = charon.swanctl("--initiate", "--child", NAME, "--timeout", "15", check=False, timeout=25)
    sa = wait_until(lambda: swan_sa(charon), 10, f"{what}: {charon.name} ESTABLISHED with a CHILD_SA "
                                                 f"(swanctl --initiate: {r.returncode} {r.stdout[-800:]})")
    log(f"{what}: {charon.name} established in {time.monotonic() - t0:.2f}s")

    # charon's own record of its virtual IP, and the address it installed.
    check(vips_of(sa) == [want_vip], f"{what}: {charon.name} shows local-vips {vips_of(sa)}, expected [{want_vip}]")
    child = next(c for c in sa["child-sas"].values() if c.get("state") == "INSTALLED")
    check(child.get("local-ts") == [f"{want_vip}/32"] and child.get("remote-ts") == [GW_NET],
          f"{what}: {charon.name}'s CHILD_SA selectors {child.get('local-ts')} === {child.get('remote-ts')}, "
          f"expected [{want_vip}/32] === [{GW_NET}]")
    addr = wait_until(lambda: re.search(rf"^\d+: (\S+)\s+inet {re.escape(want_vip)}/\d+",
                                        charon.ns.ip("-o", "-4", "addr", "show").stdout, re.M),
                      5, f"{what}: {want_vip} on a device in {charon.ns.role}")
    log(f"{what}: {charon.name} local-vips {vips_of(sa)}, {want_vip} installed on {addr.group(1)}")

    # mobiked's side: the Child SA narrowed to the virtual IP, the lease online.
    gsa = wait_until(lambda: gw_sa_for(gw, ident), 5, f"{what}: mobiked's IKE SA with {ident}")
    kids = [c for c in gsa["children"] if c["state"] == "INSTALLED"]
    check(len(kids) == 1 and kids[0].get("remote_ts") == [f"{want_vip}/32"]
          and kids[0].get("local_ts") == [GW_NET],
          f"{what}: mobiked's Child SA with {ident}: local_ts {[c.get('local_ts') for c in kids]}, "
          f"remote_ts {[c.get('remote_ts') for c in kids]}, expected {[GW_NET]} and [{want_vip}/32]")
    lease = [le for le in the_pool(gw).get("leases", []) if le.get("address") == want_vip]
    check(len(lease) == 1 and lease[0].get("identity") == ident and lease[0].get("online") is True,
          f"{what}: list-pools lease of {want_vip}: {lease}, expected online for {ident}")
    route = gw.ns.ip("-o", "route", "show", f"{want_vip}/32").stdout.strip()
    check(route.startswith(f"{want_vip} dev "),
          f"{what}: the gateway has no route for {want_vip} (into its data plane's TUN device): {route!r}")
    check(child.get("spi-in", "").lower() == kids[0]["spi_out"].lower()
          and child.get("spi-out", "").lower() == kids[0]["spi_in"].lower(),
          f"{what}: Child SPIs differ: charon in/out {child.get('spi-in')}/{child.get('spi-out')}, "
          f"mobiked in/out {kids[0]['spi_in']}/{kids[0]['spi_out']}")


def attributes_received(charon: Charon, what: str) -> None:
    """charon's log shows the CFG_REPLY: the address, the DNS server and the domain."""
    text = charon.log_text()
    parsed = re.search(r"parsed IKE_AUTH response \d+ \[[^\]]*CPRP\(([^)]*)\)", text)
    check(parsed is not None, f"{what}: {charon.name} parsed no IKE_AUTH response with a CPRP payload")
    items = parsed.group(1).split()
    check("ADDR" in items and "DNS" in items and ("DOMAIN" in items or "(25)" in items),
          f"{what}: {charon.name}'s IKE_AUTH response has CPRP({parsed.group(1)}), expected ADDR, DNS "
          "and DOMAIN (INTERNAL_DNS_DOMAIN)")
    check(re.search(r"installing new virtual IP 10\.3\.0\.\d+", text) is not None,
          f"{what}: {charon.name} does not log installing its virtual IP")
    # Without an attribute handler (no resolve/attr plugin loaded) charon cannot install
    # the DNS server, but it says what it got.
    dns = re.search(r"processing INTERNAL_IP4_DNS attribute|handling INTERNAL_IP4_DNS attribute failed|"
                    rf"installing DNS server {re.escape(DNS)}", text)
    check(dns is not None, f"{what}: {charon.name}'s log does not mention the INTERNAL_IP4_DNS attribute")
    log(f"{what}: {charon.name} parsed CPRP({parsed.group(1)}); on the DNS server it says: {dns.group(0)!r}")
    domain = re.search(r"processing (INTERNAL_DNS_DOMAIN|\(25\)) attribute|handling (INTERNAL_DNS_DOMAIN|\(25\)) "
                       r"attribute failed", text)
    log(f"{what}: on the split-DNS domain charon says: {domain.group(0) if domain else '(nothing)'!r}")


def ping(ns: Namespace, src: str, what: str) -> None:
    r = ns.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", "-I", src, "203.0.113.1"],
               check=False, timeout=20)
    check(r.returncode == 0, f"{what}: ping {src} -> 203.0.113.1 through the tunnel failed:\n"
                             f"{r.stdout}{r.stderr}")


# --------------------------------------------------------------------------- cases


def swan_client_psk(lab: Lab) -> None:
    t = nat_topology(lab)
    gw = start_gateway(lab, t)
    p = the_pool(gw)
    check((p.get("first"), p.get("last"), p.get("size"), p.get("online"), p.get("offline"),
           p.get("dns"), p.get("split_dns"), p.get("leases")) ==
          (POOL_FIRST, POOL_LAST, POOL_SIZE, 0, 0, [DNS], [SPLIT_DNS], []),
          f"list-pools before any client: {p}")
    ident = "client1@mobike.test"
    c1 = client(lab, t.ini, "charon-ini", ident, t.INI_ADDR, t)

    connect(gw, c1, ident, "10.3.0.1", "first")
    attributes_received(c1, "first")
    p = the_pool(gw)
    check(p.get("online") == 1 and p.get("offline") == 0 and len(p.get("leases", [])) == 1,
          f"list-pools with one client: {p}")
    ping(t.ini, "10.3.0.1", "first")
    log("first: ping 10.3.0.1 -> 203.0.113.1 through the tunnel")

    c1.terminate(ike=NAME, timeout=10)
    wait_until(lambda: gw_sa_for(gw, ident) is None and not gw.list_sas(), 5,
               "mobiked to delete its IKE SA after the client's delete")

    def offline():
        q = the_pool(gw)
        return q if q.get("online") == 0 and q.get("offline") == 1 else None
    p = wait_until(offline, 5, "the lease to go offline (list-pools online 0, offline 1)")
    check(p["leases"] == [{"address": "10.3.0.1", "identity": ident, "online": False}],
          f"list-pools after the client left: {p['leases']}")
    route = t.res.ip("-o", "route", "show", "10.3.0.1/32").stdout.strip()
    check(route == "", f"the gateway still routes the departed client's 10.3.0.1: {route!r}")
    log("client terminated: lease 10.3.0.1 offline, kept for it; its route gone")

    connect(gw, c1, ident, "10.3.0.1", "again")
    p = the_pool(gw)
    check(p.get("online") == 1 and p.get("offline") == 0 and len(p.get("leases", [])) == 1,
          f"list-pools after the client came back: {p}")
    ping(t.ini, "10.3.0.1", "again")
    log("again: 10.3.0.1 back for the same identity, ping through the tunnel")


def swan_client_two(lab: Lab) -> None:
    t = nat_topology(lab)
    ini2 = add_second_client(lab, t)
    gw = start_gateway(lab, t)
    id1, id2 = "client1@mobike.test", "client2@mobike.test"
    c1 = client(lab, t.ini, "charon-ini", id1, t.INI_ADDR, t)
    c2 = client(lab, ini2, "charon-ini2", id2, INI2_ADDR, t)
    connect(gw, c1, id1, "10.3.0.1", "client 1")
    connect(gw, c2, id2, "10.3.0.2", "client 2")
    # Both still as they were once the second has arrived.
    check(swan_sa(c1) is not None and vips_of(swan_sa(c1)) == ["10.3.0.1"],
          "client 1 lost its SA or its virtual IP when client 2 connected")
    p = the_pool(gw)
    leases = sorted((le["address"], le["identity"], le["online"]) for le in p.get("leases", []))
    check(p.get("online") == 2 and p.get("offline") == 0 and
          leases == [("10.3.0.1", id1, True), ("10.3.0.2", id2, True)],
          f"list-pools with two clients: {p}")
    gsas = [s for s in gw.list_sas() if s.get("state") == "ESTABLISHED"]
    check(len(gsas) == 2, f"mobiked has {len(gsas)} established IKE SAs, expected 2")
    check({s["remote"]["addr"] for s in gsas} == {t.NAT_OUTSIDE} and
          len({s["remote"]["port"] for s in gsas}) == 2,
          f"the two clients should come from the NAT's address on two ports: "
          f"{[(s['remote'], s.get('remote_id')) for s in gsas]}")
    log(f"two clients behind the NAT: {[(s.get('remote_id'), s['remote']) for s in gsas]}")

    # Both at once: 20 pings each, 0.1 s apart, running side by side.
    argv = ["ping", "-n", "-c", "20", "-i", "0.1", "-W", "2", "-I"]
    p1 = t.ini.spawn(argv + ["10.3.0.1", "203.0.113.1"], name="ping-client1")
    p2 = ini2.spawn(argv + ["10.3.0.2", "203.0.113.1"], name="ping-client2")
    rc1, rc2 = p1.wait(15), p2.wait(15)
    for rc, p, who in ((rc1, p1, "client 1 (10.3.0.1)"), (rc2, p2, "client 2 (10.3.0.2)")):
        out = p.log_text()
        m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        check(rc == 0 and m is not None and int(m.group(2)) >= 18,
              f"ping from {who} to 203.0.113.1 while the other pings too: rc {rc}\n{out[-600:]}")
        log(f"{who}: {m.group(0)}")
    for charon in (c1, c2):
        child = next(iter(swan_sa(charon)["child-sas"].values()))
        check(int(child.get("packets-in", 0)) >= 18, f"{charon.name} decrypted too little: {child}")


CERT_GW_SUBJECT = "C=CH, O=Mobike Test, CN=gw.example.test"
CERT_GW_ID = "gw.example.test"
CERT_CLIENT_SUBJECT = "C=CH, O=Mobike Test, CN=client.example.test"
CERT_CLIENT_ID = "client@example.test"


def installed_children(gw: Mobiked, ident: str) -> list[dict]:
    sa = gw_sa_for(gw, ident)
    return [c for c in sa["children"] if c["state"] == "INSTALLED"] if sa else []


def swan_client_cert(lab: Lab) -> None:
    t = nat_topology(lab)
    t0 = time.monotonic()
    pki = Pki(lab.dir / "pki")  # root ECDSA P-256
    gw_cert = pki.issue("gw", CERT_GW_SUBJECT, san=[f"DNS:{CERT_GW_ID}", f"IP:{t.RES_ADDR}"])
    cl_cert = pki.issue("client", CERT_CLIENT_SUBJECT, key_type="ecdsa256", san=[f"email:{CERT_CLIENT_ID}"])
    log(f"PKI made in {time.monotonic() - t0:.1f}s: root, gateway and client certificates (ECDSA P-256)")
    gw = start_gateway(lab, t, auth=PubkeyAuth.of(gw_cert, [pki.root], local_id=CERT_GW_ID,
                                                  remote_id="*@example.test", send_cert="always"))
    c1 = client(lab, t.ini, "charon-ini", CERT_CLIENT_ID, t.INI_ADDR, t,
                auth=PubkeyAuth.of(cl_cert, [pki.root], local_id=CERT_CLIENT_ID, remote_id=CERT_GW_ID))

    connect(gw, c1, CERT_CLIENT_ID, "10.3.0.1", "cert")
    # Certificates did it, both ways: the identities each side shows, charon's own words.
    sa = swan_sa(c1)
    check(sa.get("local-id") == CERT_CLIENT_ID and sa.get("remote-id") == CERT_GW_ID,
          f"cert: charon shows local-id {sa.get('local-id')!r}, remote-id {sa.get('remote-id')!r}, "
          f"expected {CERT_CLIENT_ID!r} and {CERT_GW_ID!r}")
    gsa = gw_sa_for(gw, CERT_CLIENT_ID)
    check(gsa.get("local_id") == CERT_GW_ID,
          f"cert: mobiked shows its own identity as {gsa.get('local_id')!r}, expected {CERT_GW_ID!r}")
    text = c1.log_text()
    ok = re.search(rf"authentication of '{re.escape(CERT_GW_ID)}' with (\S+) successful", text)
    check(ok is not None and "PSK" not in ok.group(1),
          f"cert: charon does not log a signature authentication of {CERT_GW_ID!r}: "
          f"{re.findall(r'.*authentication of.*', text)}")
    check(re.search(r"(received end entity cert|using certificate) \"C=CH, O=Mobike Test, CN=gw\.example\.test\"",
                    text) is not None,
          f"cert: charon's log shows no gateway certificate received: "
          f"{re.findall(r'.*(?:cert|trust).*', text)[:12]}")
    log(f"cert: charon authenticated {CERT_GW_ID!r} with {ok.group(1)}; mobiked names the client "
        f"{gsa.get('remote_id')!r}")
    attributes_received(c1, "cert")
    p = the_pool(gw)
    check(p.get("online") == 1 and p.get("offline") == 0 and len(p.get("leases", [])) == 1,
          f"cert: list-pools with one client: {p}")
    ping(t.ini, "10.3.0.1", "cert")
    log("cert: ping 10.3.0.1 -> 203.0.113.1 through the tunnel")

    # Child SA rekeys, by the client and then by the gateway: the address stays.
    for who in ("charon", "mobiked"):
        what = f"rekey by {who}"
        old = installed_children(gw, CERT_CLIENT_ID)
        check(len(old) == 1, f"{what}: mobiked has {len(old)} installed Child SAs before the rekey")
        old_in = old[0]["spi_in"].lower()
        if who == "charon":
            c1.rekey(child=NAME)
        else:
            gw.ctl("rekey", "--child", str(old[0]["id"]))

        def rekeyed():
            kids = installed_children(gw, CERT_CLIENT_ID)
            if len(kids) != 1 or kids[0]["spi_in"].lower() == old_in:
                return None
            ssa = swan_sa(c1)
            if not ssa:
                return None
            skids = child_sas(ssa)
            if len(skids) != 1 or skids[0].get("state") != "INSTALLED" \
                    or skids[0].get("spi-out", "").lower() != kids[0]["spi_in"].lower():
                return None
            return kids[0], ssa, skids[0]
        kid, ssa, skid = wait_until(rekeyed, 15, f"{what}: one new Child SA on both sides, the old one gone "
                                                  f"(mobiked: {installed_children(gw, CERT_CLIENT_ID)})")
        check(kid.get("remote_ts") == ["10.3.0.1/32"] and kid.get("local_ts") == [GW_NET],
              f"{what}: mobiked's new Child SA: local_ts {kid.get('local_ts')}, remote_ts {kid.get('remote_ts')}, "
              f"expected {[GW_NET]} and ['10.3.0.1/32']")
        check(skid.get("local-ts") == ["10.3.0.1/32"] and skid.get("remote-ts") == [GW_NET]
              and skid.get("spi-in", "").lower() == kid["spi_out"].lower(),
              f"{what}: charon's new CHILD_SA: {skid.get('local-ts')} === {skid.get('remote-ts')}, "
              f"SPIs in/out {skid.get('spi-in')}/{skid.get('spi-out')}; mobiked's {kid['spi_in']}/{kid['spi_out']}")
        check(vips_of(ssa) == ["10.3.0.1"], f"{what}: charon's local-vips now {vips_of(ssa)}")
        p = the_pool(gw)
        check(p.get("online") == 1 and p.get("offline") == 0 and
              p.get("leases") == [{"address": "10.3.0.1", "identity": CERT_CLIENT_ID, "online": True}],
              f"{what}: list-pools after the rekey: {p}")
        check(gw_sa_for(gw, CERT_CLIENT_ID)["spi_i"] == gsa["spi_i"], f"{what}: the IKE SA was replaced")
        ping(t.ini, "10.3.0.1", what)
        log(f"{what}: Child SA {old_in} -> {kid['spi_in']}, still 10.3.0.1/32, lease online for "
            f"{CERT_CLIENT_ID}, ping works")


# --------------------------------------------------------------------------- mobiked as the client

CLIENT_ID = "client1@mobike.test"
VIP = POOL_FIRST  # what both gateways hand out first
TUN = "mobike0"   # mobiked's default tun_name


@dataclass
class ChildrenConn(MConn):
    """An MConn with more children after its own, each (name, remote_ts) with no local_ts."""
    more_children: list[tuple[str, list[str]]] = field(default_factory=list)

    def toml(self) -> str:
        text = super().toml()
        for name, remote_ts in self.more_children:
            text += (f"\n  [[connection.child]]\n  name = {json.dumps(name)}\n"
                     f"  rekey_time = {json.dumps(self.child_rekey_time)}\n"
                     f"  remote_ts = {json.dumps(remote_ts)}\n")
        return text


def start_mobiked_client(lab: Lab, ns: Namespace, start: str = "none", remote_ts: list[str] | None = None,
                         more_children: list[tuple[str, list[str]]] | None = None) -> Mobiked:
    """mobiked with the userspace data plane asking for any IPv4 virtual IP; no local_ts,
    so it offers 0.0.0.0/0 and takes what the gateway narrows it to (and its later
    children offer the virtual IP)."""
    d = Mobiked(lab, ns, "mobiked-client", dataplane="userspace")
    conn = ChildrenConn(NAME, local_id=CLIENT_ID, remote_id=GW_ID, psk=PSK, remote_addrs=[RES_ADDR],
                        local_ts=[], remote_ts=remote_ts or [GW_NET], dpd_delay="10s", start=start,
                        extra={"vips": ["0.0.0.0"]}, more_children=more_children or [])
    return d.start([conn])


def mob_sa(d: Mobiked) -> dict | None:
    """mobiked's IKE SA NAME, ESTABLISHED with exactly the INSTALLED Child SAs in "kids"."""
    sa = d.sa(NAME)
    if not sa or sa.get("state") != "ESTABLISHED":
        return None
    kids = [c for c in sa.get("children", []) if c.get("state") == "INSTALLED"]
    return dict(sa, kids=kids) if kids else None


def tun_addresses(ns: Namespace) -> str:
    """`ip -o -4 addr show dev TUN`, the "inet A/N" parts ("" if none or no device)."""
    out = ns.ip("-o", "-4", "addr", "show", "dev", TUN, check=False).stdout
    return " ".join(re.findall(r"\binet \S+", out))


def client_has_vip(client: Mobiked, what: str, remote_net: str = GW_NET) -> dict:
    """The client mobiked's side of VIP: its log, its Child SA's local selector, the address
    on its TUN device. Returns its IKE SA."""
    sa = wait_until(lambda: mob_sa(client), 15, f"{what}: {client.name} ESTABLISHED with a Child SA")
    text = client.log_text()
    check(re.search(rf"virtual IP {re.escape(VIP)} assigned", text) is not None,
          f"{what}: {client.name} does not log 'virtual IP {VIP} assigned'")
    kids = sa["kids"]
    check(len(kids) == 1 and kids[0].get("local_ts") == [f"{VIP}/32"] and kids[0].get("remote_ts") == [remote_net],
          f"{what}: {client.name}'s Child SA selectors: local_ts {[c.get('local_ts') for c in kids]}, "
          f"remote_ts {[c.get('remote_ts') for c in kids]}, expected [{VIP}/32] and [{remote_net}]")
    installed = wait_until(lambda: re.search(rf"virtual IP {re.escape(VIP)} installed on (\S+)", client.log_text()),
                           5, f"{what}: {client.name} to log 'virtual IP {VIP} installed on <tun>' "
                              f"(warnings: {re.findall(r'.*virtual IP.*', client.log_text())})")
    check(installed.group(1) == TUN, f"{what}: {client.name} installed {VIP} on {installed.group(1)}, not {TUN}")
    check(re.search(rf"\binet {re.escape(VIP)}/32\b", tun_addresses(client.ns)) is not None,
          f"{what}: ip addr shows no {VIP}/32 on {TUN} in {client.ns.role}:\n"
          f"{client.ns.ip('-o', 'addr', 'show', check=False).stdout}")
    log(f"{what}: {client.name} got {VIP} (local_ts {kids[0]['local_ts']}); ip addr show dev {TUN}: "
        f"{tun_addresses(client.ns)}")
    return sa


def vip_route_problem(ns: Namespace, dst: str = RES_INNER) -> str | None:
    """None if the route towards dst (the gateway's inner address) goes into TUN with the
    virtual IP as its source; else what `ip route` says."""
    got = ns.ip("route", "get", dst, check=False)
    line = (got.stdout + got.stderr).strip()
    if re.search(rf"\bdev {TUN}\b", line) and re.search(rf"\bsrc {re.escape(VIP)}\b", line):
        return None
    return (f"ip route get {dst}: {line!r}; routes: "
            f"{ns.ip('route', 'show', check=False).stdout.strip()!r}")


def swan_gateway(lab: Lab, t: NatTopology) -> Charon:
    """charon (kernel-libipsec) with the pool rw and a road-warrior connection."""
    charon = Charon(lab, t.res, "charon-gw", retransmit_timeout=1.0, retransmit_tries=3,
                    log_levels={"ike": 2, "cfg": 2, "enc": 1, "knl": 2}).start()
    conn = Conn(NAME, local_id=GW_ID, remote_id=CLIENT_ID, psk=PSK, local_ts=[GW_NET], remote_ts=[],
                dpd_delay=10, extra={"pools": POOL})
    charon.swanctl_path.write_text(
        swanctl_conf([conn]) + f"pools {{\n  {POOL} {{\n    addrs = {POOL_PREFIX}\n    dns = {DNS}\n  }}\n}}\n")
    charon.swanctl("--load-all", "--file", str(charon.swanctl_path))
    return charon


def swan_remote_vips(charon: Charon) -> list[str]:
    sa = charon.list_sas().get(NAME) or {}
    v = sa.get("remote-vips", [])
    return [v] if isinstance(v, str) else list(v)


def mobiked_client_swan_gw(lab: Lab) -> None:
    t = nat_topology(lab)
    gw = swan_gateway(lab, t)
    client = start_mobiked_client(lab, t.ini)
    t0 = time.monotonic()
    client.ctl("initiate", NAME)
    sa = client_has_vip(client, "mobiked client")
    log(f"mobiked client: established in {time.monotonic() - t0:.2f}s, {sa['local']} -> {sa['remote']}")

    # charon's side: the address it handed out.
    ssa = wait_until(lambda: swan_sa(gw), 5, "charon-gw: IKE_SA ESTABLISHED with a CHILD_SA")
    rv = swan_remote_vips(gw)
    leases = gw.swanctl("--list-pools", "--leases", check=False).stdout
    online = re.search(rf"^\s*{re.escape(VIP)}\s+online\b", leases, re.M)
    check(rv == [VIP] or online is not None,
          f"charon-gw shows remote-vips {rv} and no online lease of {VIP}:\n{leases}")
    child = next(c for c in ssa["child-sas"].values() if c.get("state") == "INSTALLED")
    check(child.get("remote-ts") == [f"{VIP}/32"],
          f"charon-gw's CHILD_SA remote-ts {child.get('remote-ts')}, expected [{VIP}/32]")
    log(f"charon-gw: remote-vips {rv}; leases: {' | '.join(x.strip() for x in leases.splitlines() if x.strip())}")

    # The route's preferred source is the virtual IP: a plain ping needs no -I.
    deadline = time.monotonic() + 3
    while (problem := vip_route_problem(t.ini)) and time.monotonic() < deadline:
        time.sleep(0.1)
    check(problem is None, f"the client's route to {t.RES_INNER} is not into {TUN} from {VIP}: {problem}")
    log(f"client: ip route get {t.RES_INNER}: {t.ini.ip('route', 'get', t.RES_INNER).stdout.strip()}")
    r = t.ini.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", t.RES_INNER], check=False, timeout=20)
    check(r.returncode == 0, f"ping {t.RES_INNER} (no -I) from the client through the tunnel failed:\n"
                             f"{r.stdout}{r.stderr}\nip route get: {vip_route_problem(t.ini)}")
    kid = mob_sa(client)["kids"][0]
    log(f"client: ping {t.RES_INNER} without -I: {r.stdout.strip().splitlines()[-2]}")

    # Terminate: the address leaves the TUN device.
    client.ctl("terminate", NAME)
    wait_until(lambda: client.sa(NAME) is None, 5, f"{client.name} to delete its IKE SA")
    wait_until(lambda: not re.search(rf"\binet {re.escape(VIP)}/", tun_addresses(t.ini)), 5,
               f"{VIP} to leave {TUN} after terminate")
    check(re.search(rf"virtual IP {re.escape(VIP)} removed from {TUN}", client.log_text()) is not None,
          f"{client.name} does not log 'virtual IP {VIP} removed from {TUN}'")
    log(f"client terminated: {VIP} removed from {TUN} (Child SA was {kid['spi_in']}/{kid['spi_out']}); "
        f"{TUN} now: {tun_addresses(t.ini).strip()!r}")


def mob_view(sa: dict) -> dict:
    k = sa["kids"][0]
    return {"local": (sa["local"]["addr"], sa["local"]["port"]), "remote": (sa["remote"]["addr"], sa["remote"]["port"]),
            "ike": (sa["spi_i"].lower(), sa["spi_r"].lower()), "child": (k["spi_in"].lower(), k["spi_out"].lower()),
            "local_ts": k.get("local_ts"), "remote_ts": k.get("remote_ts"), "children": len(sa["kids"])}


def established_counts(d: Mobiked) -> tuple[int, int]:
    st = d.stats()
    return st["ike"]["established"], st["child"]["established"]


def mobiked_pair_switch(lab: Lab) -> None:
    t = make_topology(lab, 1)  # the NAT topology, the gateway on .10 and .20, conntrack counters
    gw = start_gateway(lab, t)
    client = start_mobiked_client(lab, t.ini)
    client.ctl("initiate", NAME)
    c0 = mob_view(client_has_vip(client, "before the switch"))
    g_raw = wait_until(lambda: gw_sa_for(gw, CLIENT_ID), 5, f"the gateway's IKE SA with {CLIENT_ID}")
    g0 = mob_view(dict(g_raw, kids=[c for c in g_raw["children"] if c["state"] == "INSTALLED"]))
    log(f"before: client {c0}; gateway {g0}")
    check(c0["remote"][0] == OLD and g0["local"][0] == OLD and g0["remote"][0] == t.NAT_OUTSIDE,
          f"not on {OLD} through the NAT at first: client {c0['local']} -> {c0['remote']}, "
          f"gateway {g0['local']} <- {g0['remote']}")
    check(g0["ike"] == c0["ike"] and g0["child"] == (c0["child"][1], c0["child"][0]),
          f"the peers' SPIs differ: client {c0}, gateway {g0}")
    check(g0["remote_ts"] == [f"{VIP}/32"] and g0["local_ts"] == [GW_NET],
          f"the gateway's Child SA is not narrowed to {VIP}: {g0}")
    check(g_raw.get("switch") is True, f"the gateway does not see the client's switch support: {g_raw.get('switch')!r}")
    log(f"client: ip route get {RES_INNER}: {t.ini.ip('route', 'get', RES_INNER).stdout.strip()}")

    n0 = {"client": established_counts(client), "gateway": established_counts(gw)}
    ping = Ping(t.ini, src=VIP, dst=RES_INNER, interval=0.02)
    wait_until(lambda: len(ping.times()) >= 20, 5, f"ping {VIP} -> {RES_INNER}: 20 replies before the switch")

    t_sw = time.time()
    out = gw.ctl("switch", "--to", NEW, "--all", "--json", check=False)
    try:
        answer = json.loads(out.stdout)
    except ValueError:
        answer = {}
    log(f"gateway: mobikectl switch --to {NEW} --all: rc {out.returncode}, {(time.time() - t_sw) * 1000:.0f} ms: "
        f"{out.stdout.strip()} {out.stderr.strip()}")
    check(out.returncode == 0 and answer.get("switched") == 1 and answer.get("failed") == 0
          and answer.get("refused") == 0, f"mobikectl switch did not switch the one SA: {out.stdout}{out.stderr}")

    def moved():
        c, g = mob_sa(client), gw_sa_for(gw, CLIENT_ID)
        return (c, g) if c and g and c["remote"]["addr"] == NEW and g["local"]["addr"] == NEW else None
    c_raw, g_raw = wait_until(moved, 10, f"both peers on {NEW}")
    t_moved = time.time()
    log(f"both peers on {NEW} {(t_moved - t_sw) * 1000:.0f} ms after the switch command")
    ping.wait_reply_after(t_moved, 5, f"ping {VIP} -> {RES_INNER}: a reply after the switch")
    time.sleep(1.0)
    after = len([x for x in ping.times() if x > t_moved])
    ping.stop()
    st = ping.stats()
    log(f"ping {VIP} -> {RES_INNER}: {st['replies']} replies, {st['lost']} lost, longest gap {st['gap_ms']:.0f} ms, "
        f"{after} replies after both peers moved")
    check(after >= 20, f"too few ping replies after the switch: {after}")

    c1 = mob_view(mob_sa(client))
    g_raw = gw_sa_for(gw, CLIENT_ID)
    g1 = mob_view(dict(g_raw, kids=[c for c in g_raw["children"] if c["state"] == "INSTALLED"]))
    log(f"after: client {c1}; gateway {g1}")
    check(c1["ike"] == c0["ike"] and g1["ike"] == c0["ike"],
          f"the IKE SA changed: {c0['ike']} -> client {c1['ike']}, gateway {g1['ike']}")
    check(c1["child"] == c0["child"] and g1["child"] == g0["child"] and c1["children"] == g1["children"] == 1,
          f"the Child SA changed (rekey?): client {c0['child']} -> {c1['child']}, gateway {g0['child']} -> "
          f"{g1['child']}, children {c1['children']}/{g1['children']}")
    check(c1["local"] == c0["local"] and c1["remote"] == (NEW, 4500) and g1["local"] == (NEW, 4500)
          and g1["remote"][0] == t.NAT_OUTSIDE,
          f"after the switch: client {c1['local']} -> {c1['remote']}, gateway {g1['local']} <- {g1['remote']}")
    n1 = {"client": established_counts(client), "gateway": established_counts(gw)}
    check(n1 == n0, f"new SAs were established during the switch (ike, child): before {n0}, after {n1}")
    # The virtual IP stayed what it was.
    check(c1["local_ts"] == [f"{VIP}/32"] and g1["remote_ts"] == [f"{VIP}/32"],
          f"the Child SA's selectors changed: client local_ts {c1['local_ts']}, gateway remote_ts {g1['remote_ts']}")
    check(re.search(rf"\binet {re.escape(VIP)}/32\b", tun_addresses(t.ini)) is not None,
          f"{VIP} is no longer on {TUN} after the switch: {tun_addresses(t.ini)!r}")
    check(len(re.findall(r"virtual IP \S+ assigned", client.log_text())) == 1
          and "removed from" not in client.log_text(),
          f"the client's virtual IP was assigned again or removed: "
          f"{re.findall(r'.*virtual IP.*', client.log_text())}")
    lease = [le for le in the_pool(gw).get("leases", []) if le.get("address") == VIP]
    check(len(lease) == 1 and lease[0].get("identity") == CLIENT_ID and lease[0].get("online") is True,
          f"list-pools lease of {VIP} after the switch: {the_pool(gw).get('leases')}")
    m = mapping_to(t.nat, NEW)
    check(m is not None and m["orig"].get("packets", 0) > 20 and m["reply"].get("packets", 0) > 20,
          f"the NAT's mapping to {NEW} carries no tunnel traffic: {m} (all: {nat_mappings(t.nat)})")
    log(f"after the switch: {VIP} still on {TUN}, lease online for {CLIENT_ID}, NAT mapping to {NEW}: "
        f"packets out {m['orig'].get('packets')} / in {m['reply'].get('packets')}")


NET_LO, NET_HI = "203.0.113.0/25", "203.0.113.128/25"
HI_HOST = "203.0.113.130"  # in NET_HI; nothing answers there
CHILD_HI = "rw-hi"


def plain_ping(ns: Namespace, dst: str, count: int, wait: float = 1) -> subprocess.CompletedProcess:
    """ping without -I: the source is what the route into TUN gives."""
    return ns.run(["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", f"{wait:g}", dst], check=False,
                  timeout=5 + count * (wait + 0.2))


def mobiked_pair_trap_children(lab: Lab) -> None:
    t = nat_topology(lab)
    gw = start_gateway(lab, t)
    client = start_mobiked_client(lab, t.ini, start="trap", remote_ts=[NET_LO],
                                  more_children=[(CHILD_HI, [NET_HI])])
    time.sleep(0.5)
    check(client.sa(NAME) is None, f"the client set the connection up without traffic: {client.sa(NAME)}")

    # The first trap: its traffic comes from the client's own address (no virtual IP yet).
    plain_ping(t.ini, RES_INNER, 2)
    sa = client_has_vip(client, "first trap", NET_LO)
    check([k["name"] for k in sa["kids"]] == [NAME], f"first trap: children {[k['name'] for k in sa['kids']]}")
    deadline = time.monotonic() + 3
    while (problem := vip_route_problem(t.ini)) and time.monotonic() < deadline:
        time.sleep(0.1)
    check(problem is None, f"first trap: the route to {RES_INNER} is not into {TUN} from {VIP}: {problem}")
    r = plain_ping(t.ini, RES_INNER, 3, wait=2)
    check(r.returncode == 0, f"first trap: ping {RES_INNER} (no -I) through {NAME!r} failed:\n{r.stdout}{r.stderr}")
    log(f"first trap: {NAME!r} up, ping {RES_INNER} without -I from {VIP}: {r.stdout.strip().splitlines()[-2]}")

    # The second trap, on the IKE SA that is up: a CREATE_CHILD_SA for CHILD_HI.
    plain_ping(t.ini, HI_HOST, 2)

    def two():
        s = mob_sa(client)
        g = gw_sa_for(gw, CLIENT_ID)
        if not s or not g or len(s["kids"]) != 2:
            return None
        gk = [c for c in g["children"] if c["state"] == "INSTALLED"]
        return (s, g, gk) if len(gk) == 2 else None
    deadline = time.monotonic() + 10
    while not (got := two()) and time.monotonic() < deadline:
        time.sleep(0.1)
    check(got is not None, f"second trap: no second Child SA on both sides within 10 s; the client's log: "
                           f"{re.findall(r'.*(?:TS_UNACCEPTABLE|failed|refused).*', client.log_text())[-5:]}")
    s, _, gk = got
    check(s["id"] == sa["id"] and s["spi_i"] == sa["spi_i"], "second trap: a new IKE SA instead of a second child")
    by_name = {k["name"]: k for k in s["kids"]}
    check(set(by_name) == {NAME, CHILD_HI}, f"second trap: the client's children are {sorted(by_name)}")
    for name, net in ((NAME, NET_LO), (CHILD_HI, NET_HI)):
        k = by_name[name]
        check(k.get("local_ts") == [f"{VIP}/32"] and k.get("remote_ts") == [net],
              f"second trap: the client's {name!r}: local_ts {k.get('local_ts')}, remote_ts {k.get('remote_ts')}, "
              f"expected [{VIP}/32] (the virtual IP, not {t.INI_ADDR}) and [{net}]")
    check(sorted((c.get("local_ts"), c.get("remote_ts")) for c in gk) ==
          [([NET_LO], [f"{VIP}/32"]), ([NET_HI], [f"{VIP}/32"])],
          f"second trap: the gateway's Child SAs (local_ts, remote_ts): "
          f"{[(c.get('local_ts'), c.get('remote_ts')) for c in gk]}")
    log(f"second trap: {CHILD_HI!r} {by_name[CHILD_HI]['local_ts']} === {by_name[CHILD_HI]['remote_ts']} on the "
        f"same IKE SA; the gateway narrowed it to {VIP}/32")

    # Its traffic: from the virtual IP, out by CHILD_HI, in on the gateway's second SA.
    problem = vip_route_problem(t.ini, HI_HOST)
    check(problem is None, f"second trap: the route to {HI_HOST} is not into {TUN} from {VIP}: {problem}")
    plain_ping(t.ini, HI_HOST, 5, wait=0.5)
    hi = next(k for k in mob_sa(client)["kids"] if k["name"] == CHILD_HI)
    g_hi = next(c for c in gw_sa_for(gw, CLIENT_ID)["children"]
                if c["state"] == "INSTALLED" and c.get("local_ts") == [NET_HI])
    check(hi.get("packets_out", 0) >= 5 and g_hi.get("packets_in", 0) >= 5,
          f"second trap: pings to {HI_HOST} did not go through {CHILD_HI!r}: client out "
          f"{hi.get('packets_out')}, gateway in {g_hi.get('packets_in')}")
    log(f"second trap: ping {HI_HOST}: {hi.get('packets_out')} packets out by {CHILD_HI!r}, "
        f"{g_hi.get('packets_in')} in on the gateway's Child SA")
    check(len(re.findall(r"virtual IP \S+ assigned", client.log_text())) == 1,
          f"the client's virtual IP was assigned more than once: {re.findall(r'.*virtual IP.*', client.log_text())}")
    p = the_pool(gw)
    check(p.get("online") == 1 and len(p.get("leases", [])) == 1, f"list-pools with two children: {p}")


CASES = {
    # name: (function, title, needs strongSwan)
    "swan_client_psk": (swan_client_psk, "strongSwan road warrior gets a virtual IP and DNS from mobiked's pool",
                        True),
    "swan_client_two": (swan_client_two, "two strongSwan road warriors get 10.3.0.1 and 10.3.0.2, both ping", True),
    "swan_client_cert": (swan_client_cert, "strongSwan road warrior with a certificate gets a virtual IP from "
                         "mobiked's pool", True),
    "mobiked_client_swan_gw": (mobiked_client_swan_gw, "mobiked client gets a virtual IP from a strongSwan "
                               "gateway's pool, pings from it without -I", True),
    "mobiked_pair_switch": (mobiked_pair_switch, "mobiked client keeps its virtual IP and SAs through the "
                            "mobiked gateway's operator switch", False),
    "mobiked_pair_trap_children": (mobiked_pair_trap_children, "mobiked client's second Child SA, made on demand "
                                   "by a trap, has its virtual IP as TSi", False),
}


def requires(strongswan: bool, certs: bool = False) -> None:
    require_netns()
    if strongswan:
        require_strongswan()
    require_commands("iptables", "ping", *(["openssl"] if certs else []))
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    param = netns_param(CASES)
    fn, title, swan = CASES[param]
    run_test(fn, title, timeout=90, requires=lambda: requires(swan, certs=param == "swan_client_cert"))
