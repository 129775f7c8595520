#!/usr/bin/env python3
"""Virtual IPs from a mobiked gateway's address pool (IKE_AUTH configuration payload,
RFC 7296 section 2.19; split DNS, RFC 8598) to strongSwan road-warrior clients through a
Linux MASQUERADE NAT, one ctest per case:

netns-params: swan_client_psk swan_client_two

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

Run by hand (root, a Release build):
    MOBIKE_BUILD_DIR=build/release python3 tests/netns/test_virtual_ip.py swan_client_psk
"""

import json
import re
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Charon, Conn, Lab, Namespace, check, find_binary, log, netns_param,  # noqa: E402
                   require_commands, require_netns, require_strongswan, run_test, wait_until)
from topology import NatTopology, nat_topology, setup_nat  # noqa: E402

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


def start_gateway(lab: Lab, t: NatTopology) -> Mobiked:
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
    return d.start([conn])


def client(lab: Lab, ns: Namespace, name: str, ident: str, local_addr: str, t: NatTopology) -> Charon:
    charon = Charon(lab, ns, name, retransmit_timeout=1.0, retransmit_tries=3,
                    log_levels={"ike": 2, "cfg": 2, "enc": 1, "knl": 2}).start()
    charon.load([Conn(NAME, local_id=ident, remote_id=GW_ID, psk=PSK,
                      local_addrs=[local_addr], remote_addrs=[t.RES_ADDR],
                      remote_ts=[GW_NET], dpd_delay=10, extra={"vips": "0.0.0.0"})])
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


CASES = {
    "swan_client_psk": (swan_client_psk, "strongSwan road warrior gets a virtual IP and DNS from mobiked's pool"),
    "swan_client_two": (swan_client_two, "two strongSwan road warriors get 10.3.0.1 and 10.3.0.2, both ping"),
}


def requires() -> None:
    require_netns()
    require_strongswan()
    require_commands("iptables", "ping")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    fn, title = CASES[netns_param(CASES)]
    run_test(fn, title, timeout=90, requires=requires)
