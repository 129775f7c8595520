#!/usr/bin/env python3
"""The kernel's ESP between mobiked (dataplane = "xfrm") and mobiked or strongSwan (charon
on kernel-netlink, its normal backend), both roles, through the MASQUERADE NAT:

    ini (10.1.0.2, inner 192.0.2.1) -- nat -- res (198.51.100.10, inner 203.0.113.1)

netns-uml: only
netns-params: mobiked_pair mobiked_initiator strongswan_initiator nat_mapping vip_client

Each pairing (initiator + responder):
  1. establishes; both peers' kernel SAs run between their IKE endpoints (ESP in UDP on
     the NAT's ports) and carry a ping each way;
  2. iperf3 for 2 s each way: the kernel's byte counters of both SAs cover what iperf3
     moved;
  3. under a 10 ms ping, a Child SA rekey started by the initiator, one by the responder,
     then an IKE SA rekey by each: no ping lost (the rekey responder installs its new
     outbound SA only once the initiator has it), and afterwards each kernel holds
     exactly the two SAs of the one Child SA left;
  4. DPD: with the ping stopped, the initiator's liveness checks (dpd_delay 2 s) are
     answered without a retransmission;
  5. the initiator deletes the IKE SA: both kernels are left without SAs and without
     any policy but the IKE sockets' own, and mobiked without routes in table 220
     (where each mobiked routed the remote selector, source its inner address: 1.).

nat_mapping: two mobiked without MOBIKE; the NAT maps the client to a new port in the
middle of a 10 ms ping; the gateway's kernel reports the ESP from there
(XFRM_MSG_MAPPING) and mobiked moves the SA to it (RFC 7296 §2.23) at once, not at the
next IKE message.

vip_client: mobiked as the road-warrior client with the kernel's data plane asking for a
virtual IP (vips = ["0.0.0.0"], no local_ts) from charon (kernel-netlink) with a swanctl
pool rw 10.3.0.0/24, local_ts 203.0.113.0/24, through the NAT (test_virtual_ip's
swan_gateway). Checked: mobiked logs "virtual IP 10.3.0.1 assigned", its Child SA's
local_ts is ["10.3.0.1/32"] and 10.3.0.1/32 is on eth0, the interface towards the gateway
(`ip -j addr`, `ip -j route get`); the client's kernel holds the Child SA's two SAs and
out/in policies 10.3.0.1/32 <-> 203.0.113.0/24, charon's kernel the same two SPIs; table
220 routes 203.0.113.0/24 with source 10.3.0.1 (`ip route get` says so too); a ping to
203.0.113.1 without -I gets replies and the client's kernel SAs count its packets (and
run between the IKE endpoints, ESP in UDP). After `mobikectl terminate`: 10.3.0.1 is on
no interface, table 220 is empty, and the client's kernel has no SA and no policy left.

Needs ESP in the kernel: it runs only inside user-mode-linux (uml.xfrm_interop.*).
"""

import json
import re
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobike_scenarios import make_peer  # noqa: E402
from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Lab, Skip, check, find_binary, in_uml, kernel_path_problems, log,  # noqa: E402
                   require_commands, require_netns, require_strongswan, run_test, wait_until, xfrm_policies,
                   xfrm_states)
from peers import MOBIKED, STRONGSWAN, Peer  # noqa: E402
from scenario import Ping  # noqa: E402
from topology import INI_INNER, RES_INNER, nat_topology  # noqa: E402

PAIRINGS = {
    "mobiked_pair": (MOBIKED, MOBIKED),
    "mobiked_initiator": (MOBIKED, STRONGSWAN),
    "strongswan_initiator": (STRONGSWAN, MOBIKED),
}


def spd(ns) -> list[str]:
    """The kernel's policies other than per-socket ones."""
    out = ns.run(["ip", "-o", "xfrm", "policy"]).stdout
    return [line for line in out.splitlines() if line.strip() and not re.search(r"\bsocket (in|out)\b", line)]


def settled(p: Peer, old: dict, key: str) -> dict | None:
    """p's view once `key` changed from `old` and only one Child SA is left."""
    v = p.view()
    if v and v[key] != old[key] and v["children"] == 1:
        return v
    return None


def rekey(ini: Peer, res: Peer, who: Peer, what: str) -> None:
    key = "spi_in" if what == "child" else "spi_i"
    v0, r0 = ini.established(), res.established()
    (who.rekey_child if what == "child" else who.rekey_ike)()
    vi = wait_until(lambda: settled(ini, v0, key), 20, f"{what} rekey by the {who.role}: initiator")
    vr = wait_until(lambda: settled(res, r0, key), 20, f"{what} rekey by the {who.role}: responder")
    check(vr["spi_in"] == vi["spi_out"] and vr["spi_out"] == vi["spi_in"],
          f"after the {what} rekey the peers' Child SPIs differ: {vi} / {vr}")
    log(f"{what} SA rekeyed by the {who.kind} {who.role}: "
        + (f"child {v0['spi_in']}/{v0['spi_out']} -> {vi['spi_in']}/{vi['spi_out']}" if what == "child"
           else f"IKE {v0['spi_i']} -> {vi['spi_i']}"))
    time.sleep(1.5)


def lost(ping: Ping) -> list[int]:
    """Sequence numbers without a reply between the first and the last reply."""
    seqs = sorted({s for _, s in ping.replies()})
    check(len(seqs) > 100, f"the ping got too few replies: {len(seqs)}")
    return sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))


def iperf(lab: Lab, t, reverse: bool) -> int:
    server = t.res.spawn(["iperf3", "-s", "-1", "-B", RES_INNER], name=f"iperf3-server{'-r' if reverse else ''}")
    time.sleep(0.5)
    args = ["iperf3", "-c", RES_INNER, "-B", INI_INNER, "-t", "2", "-J"] + (["-R"] if reverse else [])
    r = t.ini.run(args, check=False, timeout=60)
    check(r.returncode == 0, f"iperf3 {'-R ' if reverse else ''}through the kernel's SAs failed: "
                             f"{r.stdout[-1500:]}{r.stderr}")
    server.wait(30)  # "-1" ends the server after its test; a loaded host slows its exit
    return json.loads(r.stdout)["end"]["sum_received"]["bytes"]


def test(lab: Lab, pairing: str) -> None:
    ini_kind, res_kind = PAIRINGS[pairing]
    t = nat_topology(lab)
    res = make_peer(res_kind, lab, t.res, initiator=False, dpd=0.0)
    ini = make_peer(ini_kind, lab, t.ini, initiator=True, dpd=2.0)
    ini.initiate()
    vi, vr = ini.established(), res.established()
    log(f"established: initiator {vi['local']} -> {vi['remote']}, responder sees {vr['remote']}; "
        f"child {vi['spi_in']}/{vi['spi_out']}")

    # 1. both ways, and the kernels' SAs are where the peers say
    for ns, src, dst in ((t.ini, INI_INNER, RES_INNER), (t.res, RES_INNER, INI_INNER)):
        r = ns.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", "-I", src, dst], check=False, timeout=30)
        check(r.returncode == 0, f"ping {src} -> {dst} through the kernel's SAs failed:\n{r.stdout}{r.stderr}")
    for p, v in ((ini, vi), (res, vr)):
        problems = kernel_path_problems(p.ns, v)
        check(not problems, f"kernel SAs after establishing: {problems}")
    # mobiked's routes to the remote selectors (install_routes): table 220, looked up
    # by a rule, with the local inner address as the source.
    for p, ns, src, dst in ((ini, t.ini, INI_INNER, RES_INNER), (res, t.res, RES_INNER, INI_INNER)):
        if p.kind != MOBIKED:
            continue
        routes = ns.ip("route", "show", "table", "220").stdout
        check(re.search(rf"^{re.escape(dst)} .*src {re.escape(src)}", routes, re.M) is not None,
              f"mobiked {p.role}: no route to {dst} with source {src} in table 220: {routes!r}")
        rules = ns.ip("rule", "show").stdout
        check(re.search(r"^220:\s+from all lookup 220", rules, re.M) is not None,
              f"mobiked {p.role}: no rule for table 220: {rules!r}")
    log("routes: table 220 holds each mobiked's route to the remote selector, source its inner address")

    # 2. bulk both ways, in the kernel's own counters
    sent, received = iperf(lab, t, False), iperf(lab, t, True)
    sas = {sa["spi"]: sa for sa in xfrm_states(t.ini)}
    out_b, in_b = sas[vi["spi_out"]]["bytes"], sas[vi["spi_in"]]["bytes"]
    log(f"iperf3: {sent} B out, {received} B back; initiator's kernel SAs: out {out_b} B, in {in_b} B")
    check(out_b >= sent and in_b >= received,
          f"the kernel's SAs did not carry iperf3's bytes: out {out_b} < {sent} or in {in_b} < {received}")

    # 3. rekeys under a 10 ms ping
    ping = Ping(t.ini)
    time.sleep(1.0)
    for who, what in ((ini, "child"), (res, "child"), (ini, "ike"), (res, "ike")):
        rekey(ini, res, who, what)
    ping.stop()
    missing = lost(ping)
    log(f"10 ms ping across four rekeys: {len(ping.replies())} replies, lost {missing}")
    if missing:
        stat = {p.role: {k: v for k, v in (line.split() for line in p.ns.run(["cat", "/proc/net/xfrm_stat"])
                                           .stdout.splitlines()) if v != "0"} for p in (ini, res)}
        check(False, f"pings lost across the rekeys: icmp_seq {missing}; the kernels' XFRM errors {stat}")
    vi, vr = ini.established(), res.established()
    for p, v in ((ini, vi), (res, vr)):
        spis = sorted(sa["spi"] for sa in xfrm_states(p.ns))
        check(spis == sorted([v["spi_in"], v["spi_out"]]),
              f"{p.kind} {p.role}: the kernel holds SAs {spis} after the rekeys, expected {v['spi_in']}/{v['spi_out']}")
        problems = kernel_path_problems(p.ns, v)
        check(not problems, f"kernel SAs after the rekeys: {problems}")

    # 4. DPD through the kernel's policies
    rx = re.compile(r"sending DPD request|sending packet.*INFORMATIONAL request" if ini.kind == STRONGSWAN
                    else r"sending DPD request")
    text0 = ini.log_text()
    n0 = len(rx.findall(text0))
    rt0 = ini.stats()["retransmits"]["sent"] if ini.kind == MOBIKED else 0
    time.sleep(5)
    text = ini.log_text()
    n = len(rx.findall(text)) - n0
    check(n >= 2, f"the {ini.kind} initiator sent {n} liveness checks in 5 s (dpd_delay 2 s)")
    check(ini.view() is not None and res.view() is not None, "an SA went away during the liveness checks")
    if ini.kind == MOBIKED:
        rt = ini.stats()["retransmits"]["sent"] - rt0
        check(rt == 0, f"mobiked retransmitted {rt} liveness check(s)")
    else:
        check("retransmit" not in text[len(text0):], "charon retransmitted a liveness check")
    log(f"DPD: {n} liveness checks answered")

    # 5. delete
    ini.terminate()
    wait_until(lambda: not ini.exists() and not res.exists(), 10, "the IKE SA gone on both sides")
    for p in (ini, res):
        deadline = time.time() + 5
        while (xfrm_states(p.ns) or spd(p.ns)) and time.time() < deadline:
            time.sleep(0.1)
        check(not xfrm_states(p.ns) and not spd(p.ns),
              f"{p.kind} {p.role}: the kernel still holds SAs {xfrm_states(p.ns)} and policies {spd(p.ns)}")
    for p, ns in ((ini, t.ini), (res, t.res)):
        if p.kind == MOBIKED:
            left = ns.ip("route", "show", "table", "220").stdout.strip()
            check(not left, f"mobiked {p.role}: routes left in table 220 after the delete: {left!r}")
    log("deleted: no SA, no policy and no route left in either kernel")


def nat_mapping(lab: Lab) -> None:
    """The NAT maps the client to a new port mid-traffic (MASQUERADE from a port range,
    its old mappings flushed): a mobiked responder follows the kernel's XFRM_MSG_MAPPING
    for a peer without MOBIKE (RFC 7296 §2.23) long before any IKE message comes."""
    t = nat_topology(lab)
    conn = dict(psk="mobike-test-psk-0123456789", dpd_delay="120s", mobike=False,
                ike_proposals="aes128gcm16-prfsha256-x25519", esp_proposals="aes128gcm16")
    gw = Mobiked(lab, t.res, "gateway", dataplane="xfrm").start([MConn(
        "clients", local_id="gw.mobike.test", remote_id=None, remote_addrs=["%any"], local_ts=[RES_INNER + "/32"],
        remote_ts=[INI_INNER + "/32"], **conn)])
    cl = Mobiked(lab, t.ini, "client", dataplane="xfrm").start([MConn(
        "office", local_id="client.mobike.test", remote_id="gw.mobike.test", remote_addrs=[t.RES_ADDR],
        local_ts=[INI_INNER + "/32"], remote_ts=[RES_INNER + "/32"], **conn)])
    cl.ctl("initiate", "office")
    sa = gw.established("clients")
    check(sa["remote"]["addr"] == t.NAT_OUTSIDE and int(sa["remote"]["port"]) == 4500,
          f"the gateway does not see the client at {t.NAT_OUTSIDE}:4500: {sa['remote']}")
    ping = Ping(t.ini)
    time.sleep(1.0)
    # From now on the NAT maps to 20000-30000; deleting its address flushes what it had.
    t.nat.iptables("-t", "nat", "-I", "POSTROUTING", "1", "-p", "udp", "-s", "10.1.0.0/24", "-o", t.NAT_OUT_DEV,
                   "-j", "MASQUERADE", "--to-ports", "20000-30000")
    t0 = time.time()
    t.nat.del_address(t.NAT_OUT_DEV, t.NAT_OUTSIDE + "/24")
    t.nat.add_address(t.NAT_OUT_DEV, t.NAT_OUTSIDE + "/24")
    moved = wait_until(lambda: (lambda s: s if s and int(s["remote"]["port"]) != 4500 else None)(gw.sa("clients")),
                       5, "the gateway to follow the client's new NAT port")
    port = int(moved["remote"]["port"])
    check(20000 <= port <= 30000, f"the gateway follows port {port}, not one of the NAT's new range")
    ping.wait_reply_after(time.time(), 5, "ping replies through the new mapping")
    t_follow = time.time() - t0
    time.sleep(1.0)
    ping.stop()
    st = gw.stats()
    check(st["esp_mappings"]["followed"] >= 1 and st["dataplane"]["esp_mappings"] >= 1,
          f"the gateway did not follow a kernel mapping report: {st['esp_mappings']}, "
          f"kernel reports {st['dataplane'].get('esp_mappings')}")
    check(st["ike"]["established"] == 1, "the gateway established another IKE SA")
    child = [c for c in moved["children"] if c["state"] == "INSTALLED"][0]
    view = {"local": (t.RES_ADDR, 4500), "remote": (t.NAT_OUTSIDE, port),
            "spi_in": child["spi_in"].lower(), "spi_out": child["spi_out"].lower()}
    problems = kernel_path_problems(t.res, view)
    check(not problems, f"the gateway's kernel SAs after the mapping change: {problems}")
    log(f"NAT mapping 4500 -> {port}: the gateway followed the kernel's report and replies flowed "
        f"{t_follow:.2f} s after the change (no IKE message in between: DPD every 120 s); "
        f"{len(lost(ping))} pings lost")


def vip_client(lab: Lab) -> None:
    """mobiked (dataplane xfrm) gets a virtual IP from charon's pool (module docstring)."""
    import test_virtual_ip as v
    t = nat_topology(lab)
    gw = v.swan_gateway(lab, t)
    vip = v.VIP
    cl = Mobiked(lab, t.ini, "mobiked-client", dataplane="xfrm").start([MConn(
        v.NAME, local_id=v.CLIENT_ID, remote_id=v.GW_ID, psk=v.PSK, remote_addrs=[t.RES_ADDR],
        local_ts=[], remote_ts=[v.GW_NET], dpd_delay="10s", extra={"vips": ["0.0.0.0"]})])
    t0 = time.monotonic()
    cl.ctl("initiate", v.NAME)
    sa = cl.established(v.NAME)
    kids = [c for c in sa["children"] if c["state"] == "INSTALLED"]
    log(f"established in {time.monotonic() - t0:.2f}s: {sa['local']} -> {sa['remote']}")

    # The address: assigned, the Child SA narrowed to it, on the interface towards the gateway.
    check(re.search(rf"virtual IP {re.escape(vip)} assigned", cl.log_text()) is not None,
          f"mobiked does not log 'virtual IP {vip} assigned': {re.findall(r'.*virtual IP.*', cl.log_text())}")
    check(len(kids) == 1 and kids[0]["local_ts"] == [f"{vip}/32"] and kids[0]["remote_ts"] == [v.GW_NET],
          f"the client's Child SA(s): {[(c['local_ts'], c['remote_ts']) for c in kids]}, "
          f"expected [{vip}/32] === [{v.GW_NET}]")
    kid = kids[0]
    towards = json.loads(t.ini.ip("-j", "route", "get", t.RES_ADDR).stdout)[0]["dev"]

    def vip_devs() -> list[str]:
        return [i["ifname"] for i in json.loads(t.ini.ip("-j", "addr", "show").stdout)
                for a in i.get("addr_info", []) if a.get("local") == vip]
    devs = wait_until(lambda: vip_devs() or None, 5, f"{vip} on an interface of the client")
    check(devs == [towards], f"{vip} is on {devs}, expected only on {towards} (towards the gateway)")
    rv = v.swan_remote_vips(gw)
    check(rv == [vip], f"charon-gw shows remote-vips {rv}, expected [{vip}]")
    log(f"client got {vip} (local_ts {kid['local_ts']}), on {devs[0]}; charon-gw remote-vips {rv}")

    # The kernel's SAs and policies, and table 220's route with the virtual IP as source.
    spis = sorted(s["spi"] for s in xfrm_states(t.ini))
    want = sorted([kid["spi_in"].lower(), kid["spi_out"].lower()])
    check(spis == want, f"the client's kernel holds SAs {spis}, expected the Child SA's {want}")
    gw_spis = sorted(s["spi"] for s in xfrm_states(t.res))
    check(gw_spis == want, f"charon's kernel (kernel-netlink) holds SAs {gw_spis}, expected {want}")
    pols = {(p["dir"], p["src"], p["dst"]) for p in xfrm_policies(t.ini)}
    for d, src, dst in (("out", f"{vip}/32", v.GW_NET), ("in", v.GW_NET, f"{vip}/32")):
        check((d, src, dst) in pols, f"the client's kernel has no {d} policy {src} -> {dst}: {sorted(pols)}")
    routes = t.ini.ip("route", "show", "table", "220").stdout
    check(re.search(rf"^{re.escape(v.GW_NET)} .*\bdev {towards}\b.*\bsrc {re.escape(vip)}\b", routes, re.M)
          is not None, f"table 220 has no route to {v.GW_NET} dev {towards} with source {vip}: {routes!r}")
    got = t.ini.ip("route", "get", t.RES_INNER).stdout.strip()
    check(re.search(rf"\bsrc {re.escape(vip)}\b", got) is not None,
          f"ip route get {t.RES_INNER} does not take {vip} as the source: {got!r}")
    log(f"kernel: SAs {spis} (charon's kernel the same), policies {vip}/32 <-> {v.GW_NET}; "
        f"table 220: {routes.strip()!r}")

    # A ping without -I: its source is the route's, the virtual IP.
    before = {s["spi"]: s["packets"] for s in xfrm_states(t.ini)}
    r = t.ini.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", t.RES_INNER], check=False, timeout=20)
    check(r.returncode == 0, f"ping {t.RES_INNER} from the client through the kernel's SAs failed:\n"
                             f"{r.stdout}{r.stderr}")
    after = {s["spi"]: s["packets"] for s in xfrm_states(t.ini)}
    for spi in want:
        check(after.get(spi, 0) >= before.get(spi, 0) + 3,
              f"the client's kernel SA {spi} counted {before.get(spi)} -> {after.get(spi)} packets for 3 pings")
    view = {"local": (sa["local"]["addr"], int(sa["local"]["port"])),
            "remote": (sa["remote"]["addr"], int(sa["remote"]["port"])),
            "spi_in": kid["spi_in"].lower(), "spi_out": kid["spi_out"].lower()}
    problems = kernel_path_problems(t.ini, view)
    check(not problems, f"the client's kernel SAs: {problems}")
    log(f"ping {t.RES_INNER} (no -I): {r.stdout.strip().splitlines()[-2]}; SA packets {before} -> {after}")

    # Terminate: the address and the routes go with the Child SA.
    cl.ctl("terminate", v.NAME)
    wait_until(lambda: cl.sa(v.NAME) is None, 5, "the client to delete its IKE SA")
    wait_until(lambda: not vip_devs(), 5, f"{vip} to leave the client's interfaces after terminate")
    deadline = time.time() + 5
    while (xfrm_states(t.ini) or spd(t.ini) or t.ini.ip("route", "show", "table", "220").stdout.strip()) \
            and time.time() < deadline:
        time.sleep(0.1)
    left = t.ini.ip("route", "show", "table", "220").stdout.strip()
    check(not left, f"routes left in table 220 after terminate: {left!r}")
    check(not xfrm_states(t.ini) and not spd(t.ini),
          f"the client's kernel still holds SAs {xfrm_states(t.ini)} and policies {spd(t.ini)}")
    log(f"terminated: {vip} on no interface, table 220 empty, no SA or policy left in the client's kernel")


def requires():
    if not in_uml():
        raise Skip("needs ESP in the kernel: runs inside user-mode-linux (uml.xfrm_interop.*)")
    require_netns()
    require_strongswan()
    require_commands("iptables", "ping", "iperf3")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    pairing = sys.argv[1] if len(sys.argv) > 1 else "mobiked_pair"
    if pairing == "nat_mapping":
        run_test(nat_mapping, "kernel ESP, the client's NAT mapping changes", requires=requires)
    elif pairing == "vip_client":
        run_test(vip_client, "kernel ESP, mobiked client gets a virtual IP from charon's pool", timeout=90,
                 requires=requires)
    elif pairing not in PAIRINGS:
        sys.exit(f"unknown pairing {pairing!r}: {', '.join(PAIRINGS)}, nat_mapping, vip_client")
    else:
        run_test(lambda lab: test(lab, pairing), f"kernel ESP, {pairing.replace('_', ' ')}", timeout=280,
                 requires=requires)
