"""The responder-initiated switch scenarios of issue 5 (SWITCH_TO_IP_ADDRESS, see
docs/switch.md), shared by tests/netns/test_switch_*.py and bench/responder-move: an
initiator behind a Linux NAT, a responder that moves its SAs from its old address
198.51.100.10 to its new address 198.51.100.20, a 10 ms ping through the tunnel and each
peer's own view before and after.

Scenarios 1 and 2 (topology.nat_topology, one segment outside the NAT):

    ini eth0 10.1.0.2 -- nat in0 10.1.0.1 | out0 198.51.100.2 -- res eth0 198.51.100.10, .20

Scenario 3 (topology.multihomed_responder_topology: two interfaces on two routed segments;
"wan" is a router between the NAT's outside and the responder's two uplinks):

    ini eth0 10.1.0.2 -- nat in0 10.1.0.1 | out0 198.51.100.2/29 -- wan pn .1/29
                                        wan p0 198.51.100.9/29  -- res eth0 198.51.100.10/29 (default route metric 100)
                                        wan p1 198.51.100.17/29 -- res eth1 198.51.100.19/29 and
                                                                       .20/29 (default route metric 200)

    inner (traffic selectors): ini 192.0.2.1/32 on lo, res 203.0.113.1/32 on lo

The NAT is MASQUERADE with conntrack-state filtering (topology.setup_nat): a packet from
198.51.100.20 reaches the initiator only once the initiator has sent one there. The
NAT's conntrack table keeps per-direction packet counters (nf_conntrack_acct) so the
mapping to the new address can be shown to carry the traffic.

Scenarios 5 and 6 (the NAT topology, and the responder's service addresses
203.0.113.10 and 203.0.113.20 as /32s that the NAT routes via 198.51.100.10; the
responder's connection names them, local_addrs = [.10, .20], no switch_prefer; the
initiator dials 203.0.113.10):

    5: res lo 203.0.113.10/32, 203.0.113.20/32 (routed or anycast service addresses)
    6: res eth0 203.0.113.10/32, 203.0.113.20/32 beside 198.51.100.10/24 and .20/24

The route's source towards the initiator's NAT is eth0's 198.51.100.10, which the
connection does not name: the switch must go to 203.0.113.20, the address announced.

Scenarios (run_scenario(lab, n, ini_kind, res_kind)):
  1. operator switch while both addresses work: `mobikectl switch --sa ID --to .20`;
  2. 198.51.100.10 is deleted from the responder (`ip addr del`), automatic switch;
  3. multihomed responder, the old address's interface goes down
     (`ip link set dev eth0 down`: the address stays, its routes go), automatic switch;
     mobiked's responder is configured with switch_prefer = [198.51.100.30 (never
     present), 198.51.100.20], so the first *usable* preferred address must be taken,
     not eth1's primary 198.51.100.19 that the route to the initiator's NAT now uses;
  5. service addresses on lo: 203.0.113.10 is deleted, automatic switch to .20;
  6. the same service addresses on eth0: 203.0.113.10 is deleted, automatic switch.
Scenarios 2 and 3 also run with a strongSwan initiator (test_switch_scenario4, the
bench's "mixed" pairing) and with strongSwan on both ends (the bench); there is no
operator switch in strongSwan, so scenario 1 is mobiked only. A strongSwan initiator never
announces SWITCH_TO_IP_ADDRESS support, so a mobiked responder must not ask it to switch;
what strongSwan then does is observed and reported (Result.outcome, Result.facts: what
charon's log shows after the change), not assumed.

Each peer runs its liveness checks as the initiator would in the field: the initiator
every 2 s, the responder every 30 s (so that what a strongSwan initiator does by itself is
what is observed); the change comes 1.5 s into a 10 ms ping plus a random part of the
initiator's 2 s liveness cycle (or, with before_dpd, just before its next check).

Measured for each run (Result.metrics): the longest gap between ping replies over the
run (gap_ms) and the stall the change caused (stall_ms), the change to the first reply
after it (resume_ms), the change to both peers showing the new address (moved_ms), or
the change to the SA being deleted (deleted_ms); for an operator switch the time the
`mobikectl switch` command took (switch_cmd_ms).

Problems that do not stop the scenario (an address in a view, a counter) are collected
in Result.problems; a broken precondition raises Failure.

Entry points: run_scenario(lab, n, ini_kind, res_kind) runs scenario n for one pairing
(peers.MOBIKED or peers.STRONGSWAN on each end) and returns its Result (the bench reads
it); run_checked(lab, n) runs it for a netns test, failing on any problem (and, for
mobiked on both ends, unless the SA moved). A new scenario needs a TITLES entry, its
network in make_topology() if not the NAT topology, its change in change(), any
peer settings of its own in make_peer(), and a test_switch_scenario<n>_<what>.py whose
docstring says what it checks and that calls run_checked(lab, n).
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import shutil
import time

from netns import (Failure, Lab, Namespace, Skip, check, find_binary, in_uml, kernel_path_problems, log,
                   require_commands, require_netns, require_strongswan, tail, wait_until, xfrm_states)
from peers import MOBIKED, STRONGSWAN, MobikedPeer, Peer, SwanPeer, Tunnel, out_oseq
from scenario import TUNNEL, Ping, Result, fmt_ms
from topology import (INI_ADDR, INI_INNER, NAT_OUTSIDE, RES_ADDR, RES_ADDR2, RES_INNER, MultihomedResponderTopology,
                      NatTopology, multihomed_responder_topology, nat_topology)

OLD, NEW = RES_ADDR, RES_ADDR2  # the responder moves its SAs from OLD to NEW (scenarios 1-3)
SVC_OLD, SVC_NEW = "203.0.113.10", "203.0.113.20"  # scenarios 5 and 6: the service addresses
NAT_PUB = NAT_OUTSIDE  # the initiator's public address
ABSENT = "198.51.100.30"  # in switch_prefer (scenario 3), never configured anywhere
ETH1_PRIMARY = MultihomedResponderTopology.RES_ETH1_PRIMARY  # scenario 3: the route's source once eth0 is down
INI_DPD_S = 2.0  # the initiator's dpd_delay; the responder's is 30 s
SWITCH_NOTIFY = 61440  # mobiked's default switch_notify_type (private range)

TITLES = {
    1: "operator switch while both addresses work",
    2: "the old address is deleted from the responder",
    3: "multihomed responder, the old address's interface goes down",
    5: "service addresses on the responder's lo, the one in use is deleted",
    6: "service addresses on the responder's interface, the one in use is deleted",
}
SERVICE_SCENARIOS = (5, 6)


def addresses(scenario: int) -> tuple[str, str]:
    """(old, new): the responder's address before and after the scenario's change."""
    return (SVC_OLD, SVC_NEW) if scenario in SERVICE_SCENARIOS else (OLD, NEW)


def tunnel(scenario: int) -> Tunnel:
    """The tunnel both peers configure: the initiator dials the scenario's old address."""
    return Tunnel(TUNNEL.name, res_addr=addresses(scenario)[0])

# How long a run waits for the outcome of the change: mobiked must have moved well
# within it; strongSwan (charon with dpd_delay 2s and 4 retransmissions from 1s, about
# 25 s to give up) must have either found the new address or deleted the SA.
OUTCOME_TIMEOUT = {MOBIKED: 15.0, STRONGSWAN: 45.0}


# --------------------------------------------------------------------------- topology


def make_topology(lab: Lab, scenario: int) -> NatTopology | MultihomedResponderTopology:
    """Scenarios 1 and 2: the NAT topology, the responder's .10 and .20 on one interface;
    scenario 3: the multihomed responder. Either way the NAT's conntrack entries count
    packets per direction (nf_conntrack_acct)."""
    if scenario == 3:
        topo = multihomed_responder_topology(lab)
    else:
        topo = nat_topology(lab)
        # Deleting the primary 198.51.100.10 must leave the secondary .20 in place.
        for dev in ("all", "default", "eth0"):
            topo.res.sysctl(f"net.ipv4.conf.{dev}.promote_secondaries", 1)
    if scenario in SERVICE_SCENARIOS:
        dev = "lo" if scenario == 5 else "eth0"
        for a in (SVC_OLD, SVC_NEW):
            topo.res.add_address(dev, a + "/32")
            topo.nat.add_route(a + "/32", via=RES_ADDR)
        route = topo.res.ip("route", "get", NAT_PUB).stdout
        check(f"src {RES_ADDR}" in route, f"the responder's route to the NAT does not leave from {RES_ADDR}: {route}")
    # Per-direction packet counts in the NAT's conntrack entries.
    topo.nat.sysctl("net.netfilter.nf_conntrack_acct", 1)
    return topo


def change(topo: NatTopology, scenario: int) -> str:
    """The change of scenarios 2 and 3 at the responder; returns what was done."""
    if scenario == 2:
        topo.res.del_address("eth0", OLD + "/24")
        left = topo.res.addresses("eth0")
        check(NEW in left, f"deleting {OLD} took {NEW} with it: eth0 has {left}")
        return f"responder: {OLD} deleted from eth0"
    if scenario in SERVICE_SCENARIOS:
        dev = "lo" if scenario == 5 else "eth0"
        topo.res.del_address(dev, SVC_OLD + "/32")
        left = topo.res.addresses(dev)
        check(SVC_NEW in left and RES_ADDR in topo.res.addresses("eth0"),
              f"deleting {SVC_OLD} took more with it: {dev} has {left}")
        return f"responder: {SVC_OLD} deleted from {dev} (route to the NAT still from {RES_ADDR})"
    if scenario == 3:
        topo.res.ip("link", "set", "dev", "eth0", "down")
        route = topo.res.ip("route", "get", NAT_PUB).stdout.splitlines()[0].strip()
        check(f"src {ETH1_PRIMARY}" in route, f"with eth0 down the route's source is not {ETH1_PRIMARY}: {route}")
        return f"responder: eth0 (the old address's interface) down; route now {route}"
    raise ValueError(scenario)


def conntrack_table(nat: Namespace) -> str:
    """The NAT's conntrack table as text: /proc/net/nf_conntrack (the namespace's own),
    else the conntrack tool (Debian: conntrack), which prints the same tuples."""
    r = nat.run(["cat", "/proc/net/nf_conntrack"], check=False)
    if r.returncode == 0:
        return r.stdout
    if shutil.which("conntrack"):
        return nat.run(["conntrack", "-L", "-o", "extended"]).stdout
    raise Skip("cannot read the NAT's conntrack table: no /proc/net/nf_conntrack (kernel without "
               "CONFIG_NF_CONNTRACK_PROCFS) and no conntrack tool (Debian: conntrack)")


def nat_mappings(nat: Namespace) -> list[dict]:
    """UDP entries of the NAT's conntrack table: {orig: {src, dst, sport, dport,
    packets}, reply: {...}, assured}."""
    text = conntrack_table(nat)
    out = []
    for line in text.splitlines():
        if " udp " not in line:
            continue
        tuples, cur = [], None
        for tok in line.split():
            k, sep, v = tok.partition("=")
            if not sep:
                continue
            if k == "src":
                cur = {}
                tuples.append(cur)
            if cur is not None and k in ("src", "dst", "sport", "dport", "packets", "bytes"):
                # /proc/net/nf_conntrack writes IPv6 addresses uncompressed.
                cur[k] = ipaddress.ip_address(v).compressed if k in ("src", "dst") else int(v)
        if len(tuples) >= 2:
            out.append({"orig": tuples[0], "reply": tuples[1], "assured": "[ASSURED]" in line})
    return out


def mapping_to(nat: Namespace, dst: str) -> dict | None:
    """The NAT's mapping of the initiator's NAT-T port towards dst:4500."""
    for m in nat_mappings(nat):
        o = m["orig"]
        if o["src"] == INI_ADDR and o["sport"] == 4500 and o["dst"] == dst and o["dport"] == 4500:
            return m
    return None


class EspCounters:
    """iptables counters in the responder's namespace: ESP-in-UDP (port 4500, first four
    octets of the UDP payload non-zero, i.e. not the non-ESP marker of IKE) received on
    and sent from each of the responder's two addresses."""

    U32 = "0>>22&0x3C@8=0"  # the 32 bits after the UDP header are zero: IKE, not ESP

    def __init__(self, ns: Namespace, old: str = OLD, new: str = NEW):
        self.ns, self.old, self.new = ns, old, new
        ns.iptables("-N", "rsw_esp_in")
        ns.iptables("-N", "rsw_esp_out")
        esp = ["-m", "u32", "!", "--u32", self.U32]
        probe = ns.run(["iptables", "-w", "-I", "INPUT", "-p", "udp", "--dport", "4500", *esp, "-j", "rsw_esp_in"],
                       check=False)
        if probe.returncode != 0:
            # No u32 match (xt_u32) here: count every NAT-T datagram; the 10 ms ping's ESP
            # outnumbers the few IKE messages by far.
            log(f"  note: no iptables u32 match ({probe.stderr.strip()}): counting IKE with ESP")
            esp = []
            ns.iptables("-I", "INPUT", "-p", "udp", "--dport", "4500", "-j", "rsw_esp_in")
        ns.iptables("-I", "OUTPUT", "-p", "udp", "--sport", "4500", *esp, "-j", "rsw_esp_out")
        for addr in (old, new):
            ns.iptables("-A", "rsw_esp_in", "-d", addr)
            ns.iptables("-A", "rsw_esp_out", "-s", addr)

    def read(self) -> dict:
        """{"in_old", "in_new", "out_old", "out_new"}: packets so far."""
        out = {}
        for chain, key in (("rsw_esp_in", "in"), ("rsw_esp_out", "out")):
            # "-A rsw_esp_in -d 198.51.100.10/32 -c PACKETS BYTES"
            for m in re.finditer(r"^-A \S+ -[ds] ([0-9.]+)/32 -c (\d+) \d+",
                                 self.ns.iptables("-v", "-S", chain).stdout, re.M):
                if m.group(1) in (self.old, self.new):
                    out[f"{key}_{'old' if m.group(1) == self.old else 'new'}"] = int(m.group(2))
        return out


def delta(a: dict, b: dict) -> dict:
    return {k: b.get(k, 0) - a.get(k, 0) for k in b}


# --------------------------------------------------------------------------- peers


def make_peer(kind: str, lab: Lab, ns: Namespace, *, initiator: bool, scenario: int, quiet: bool) -> Peer:
    """The scenario's peer of `kind`, started: retransmissions from 1 s, 4 tries; mobiked
    with the userspace data plane. The responder leaves liveness checks to the initiator
    (dpd_delay 30s against 2s), so that what a strongSwan initiator does by itself is what
    is observed. Scenario 3's mobiked responder has switch_prefer [ABSENT, NEW]; in
    scenarios 5 and 6 it names its service addresses, local_addrs [SVC_OLD, SVC_NEW]."""
    if kind == MOBIKED:
        extra = {}
        if not initiator and scenario == 3:
            extra["switch_prefer"] = [ABSENT, NEW]
        if not initiator and scenario in SERVICE_SCENARIOS:
            extra["local_addrs"] = [SVC_OLD, SVC_NEW]
        return MobikedPeer(lab, ns, tunnel(scenario), initiator=initiator, dpd=INI_DPD_S if initiator else 30,
                           extra=extra, log_level="info" if quiet else "debug").start()
    if kind == STRONGSWAN:
        # charon's default log levels (ike 2) even when quiet: what it learns of the peer's
        # addresses is logged at level 2 and is part of the report.
        return SwanPeer(lab, ns, tunnel(scenario), initiator=initiator, dpd=INI_DPD_S if initiator else 30,
                        retransmit=(1.0, 4)).start()
    raise ValueError(kind)


# --------------------------------------------------------------------------- scenarios


def describe(v: dict | None) -> str:
    if v is None:
        return "no established SA"
    return (f"{v['local'][0]}:{v['local'][1]} <-> {v['remote'][0]}:{v['remote'][1]} IKE {v['spi_i']}/{v['spi_r']} "
            f"child in {v['spi_in']} out {v['spi_out']}")


def run_scenario(lab: Lab, scenario: int, ini_kind: str, res_kind: str, *, quiet: bool = False,
                 poll: float = 0.02, follow: float = 0.0, before_dpd: float | None = None) -> Result:
    """One scenario for one pairing in `lab`. Raises Failure when it cannot continue.
    follow: when one side deletes the SA, how long to watch whether the other does too.
    before_dpd (mobiked initiator only): make the change this many seconds before the
    initiator's next liveness check instead of at an arbitrary moment, so that the check
    leaves towards the address that just went away (its request is lost)."""
    r = Result(scenario, ini_kind, res_kind)
    old, new = addresses(scenario)
    log(f"scenario {scenario} ({TITLES[scenario]}): {r.pairing}")
    if scenario == 1 and res_kind != MOBIKED:
        raise Failure("scenario 1 (operator switch) needs a mobiked responder: strongSwan has no such command")
    if before_dpd is not None and ini_kind != MOBIKED:
        raise Failure("before_dpd needs a mobiked initiator (its debug log times the liveness checks)")
    topo = make_topology(lab, scenario)
    res = make_peer(res_kind, lab, topo.res, initiator=False, scenario=scenario, quiet=quiet)
    ini = make_peer(ini_kind, lab, topo.ini, initiator=True, scenario=scenario,
                    quiet=quiet and before_dpd is None)

    t_init = time.monotonic()
    ini.initiate()
    before = wait_until(lambda: ini.view(), 20, f"{ini_kind} initiator: SA established")
    res_before = wait_until(lambda: res.view(), 10, f"{res_kind} responder: SA established")
    r.metrics["establish_s"] = time.monotonic() - t_init
    log(f"  established: initiator {describe(before)}; responder {describe(res_before)}")
    check(before["local"][0] == INI_ADDR and before["remote"] == (old, 4500),
          f"the initiator does not start on {INI_ADDR} -> {old}:4500: {describe(before)}")
    check(res_before["local"] == (old, 4500) and res_before["remote"][0] == NAT_PUB,
          f"the responder does not start on {old}:4500 <- {NAT_PUB}: {describe(res_before)}")
    check(before["spi_i"] == res_before["spi_i"] and before["spi_r"] == res_before["spi_r"],
          "the peers' IKE SPIs differ at start")
    r.facts["before"] = {"initiator": before, "responder": res_before}
    if res.kind == MOBIKED:
        r.facts["switch"] = res_before["switch"]
        expect = ini.kind == MOBIKED
        r.problem(res_before["switch"] is expect,
                  f"mobiked responder shows switch={res_before['switch']!r} for a {ini.kind} initiator, "
                  f"expected {expect}")
    if ini.kind == MOBIKED:
        pa = before.get("peer_addresses") or []
        addrs = [a if isinstance(a, str) else a.get("addr") for a in pa]
        r.problem(new in addrs, f"the initiator was not told of the responder's {new}: peer_addresses {pa}")

    probe = topo.ini.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", "-I", INI_INNER, RES_INNER],
                         check=False, timeout=30)
    check(probe.returncode == 0, f"no traffic through the tunnel before the change:\n{probe.stdout}{probe.stderr}")
    check(mapping_to(topo.nat, old) is not None, f"the NAT has no mapping to {old}:4500: {nat_mappings(topo.nat)}")
    check(mapping_to(topo.nat, new) is None, f"the NAT already maps to {new} before the change")

    esp = EspCounters(topo.res, old, new)
    stats0 = {id(p): p.stats() for p in (ini, res) if p.kind == MOBIKED}
    ping = Ping(topo.ini)
    time.sleep(1.5)
    check(len(ping.times()) > 50, f"the 10 ms ping gets too few replies before the change: "
                                  f"{len(ping.times())}\n{tail(ping.proc.log_text(), 10)}")
    c0 = esp.read()
    check(c0.get("in_old", 0) > 50 and c0.get("out_old", 0) > 50,
          f"ESP does not flow on {old} before the change: {c0}")
    oseq0 = {}
    if in_uml():  # ESP in the kernel: both peers' SAs are the kernel's
        for p, v in ((ini, before), (res, res_before)):
            check(not kernel_path_problems(p.ns, v), f"kernel SAs at start: {kernel_path_problems(p.ns, v)}")
            oseq0[id(p)] = out_oseq(p, v)

    if before_dpd is not None:
        # mobiked runs a liveness check every dpd_delay (2 s) whatever the ESP traffic.
        rx = re.compile(r"sending DPD request")
        n0 = len(rx.findall(ini.log_text()))
        wait_until(lambda: len(rx.findall(ini.log_text())) > n0, 5, "the initiator's next liveness check",
                   interval=0.001)
        time.sleep(max(0.0, INI_DPD_S - before_dpd))
        r.facts["before_dpd_s"] = before_dpd
    else:
        # At a random point of the initiator's liveness-check cycle: everything above
        # takes about the same time in every run, so a fixed moment would always meet
        # the cycle at the same phase (a check in flight to a vanished address delays
        # the initiator's UPDATE_SA_ADDRESSES, see --before-dpd in bench/responder-move).
        phase = random.uniform(0.0, INI_DPD_S)
        r.facts["phase_s"] = round(phase, 3)
        time.sleep(phase)

    # ------------------------------------------------------------- the change
    swan_log0 = {id(p): len(p.log_text()) for p in (ini, res) if p.kind == STRONGSWAN}
    mob_log0 = {id(p): len(p.log_text()) for p in (ini, res) if p.kind == MOBIKED}
    t0 = time.time()
    if scenario == 1:
        out = res.mobiked.ctl("switch", "--sa", str(res_before["id"]), "--to", new, "--json", check=False)
        r.metrics["switch_cmd_ms"] = (time.time() - t0) * 1000
        try:
            answer = json.loads(out.stdout)
        except ValueError:
            answer = {}
        log(f"  mobikectl switch --sa {res_before['id']} --to {new}: rc {out.returncode}, "
            f"{fmt_ms(r.metrics['switch_cmd_ms'])}: {json.dumps(answer) if answer else out.stdout.strip()} "
            f"{out.stderr.strip()}")
        r.facts["switch_answer"] = answer
        r.problem(out.returncode == 0 and answer.get("switched") == 1 and answer.get("refused") == 0
                  and answer.get("failed") == 0 and answer.get("not_started") == 0,
                  f"mobikectl switch did not report one switched SA: rc {out.returncode} {out.stdout}{out.stderr}")
        sas = answer.get("sas") or [{}]
        r.problem(sas[0].get("sa") == res_before["id"] and sas[0].get("result") == "switched",
                  f"mobikectl switch: per-SA result {sas}")
    else:
        log("  " + change(topo, scenario))

    # ------------------------------------------------------------- the outcome
    deadline = t0 + OUTCOME_TIMEOUT[STRONGSWAN if STRONGSWAN in (ini.kind, res.kind) else MOBIKED]
    t_moved = t_deleted = None
    gone: list[str] = []
    last = (None, None)
    while time.time() < deadline:
        iv, rv = ini.view(), res.view()
        last = (iv, rv)
        now = time.time()
        if iv and rv and iv["remote"][0] == new and rv["local"][0] == new:
            t_moved = now
            break
        gone = [f"{p.kind} {'initiator' if p is ini else 'responder'}" for p in (ini, res) if not p.exists()]
        if gone:
            t_deleted = now
            break
        time.sleep(poll)
    if t_moved is not None:
        r.outcome = "moved"
        r.metrics["moved_ms"] = (t_moved - t0) * 1000
        log(f"  both peers on {new} {fmt_ms(r.metrics['moved_ms'])} after the change")
    elif t_deleted is not None:
        r.outcome = "deleted"
        r.metrics["deleted_ms"] = (t_deleted - t0) * 1000
        r.facts["deleted_by"] = gone
        log(f"  SA deleted on the {', '.join(gone)} {r.metrics['deleted_ms'] / 1000:.1f}s after the change")
        if follow > 0 and len(gone) < 2:
            # How long the other side keeps its (now useless) SA.
            other = ini if ini.exists() else res
            end = time.time() + follow
            while time.time() < end and other.exists():
                time.sleep(0.2)
            if not other.exists():
                r.metrics["other_deleted_ms"] = (time.time() - t0) * 1000
                log(f"  ... and on the {other.kind} {'initiator' if other is ini else 'responder'} "
                    f"{r.metrics['other_deleted_ms'] / 1000:.1f}s after the change")
            else:
                state = (other.raw() or {}).get("state")
                r.facts["other_side_after_s"] = {"seconds": round(time.time() - t0, 1), "state": state}
                log(f"  the {other.kind} {'initiator' if other is ini else 'responder'} still holds the SA "
                    f"({state}) {time.time() - t0:.0f}s after the change")
    else:
        r.outcome = "stuck"
        log(f"  neither moved nor deleted within {deadline - t0:.0f}s: initiator {describe(last[0])}; "
            f"responder {describe(last[1])}")

    if r.outcome == "moved":
        try:
            ping.wait_reply_after(t_moved, 10, "ping replies after the switch")
        except Failure as e:
            r.problem(False, str(e))
        time.sleep(0.5)
        c1 = esp.read()
        time.sleep(1.5)
        c2 = esp.read()
        iv, rv = ini.view(), res.view()
        log(f"  after the switch: initiator {describe(iv)}; responder {describe(rv)}")
        check(iv is not None and rv is not None, f"an SA disappeared after the switch: {describe(iv)} / {describe(rv)}")
        r.facts["after"] = {"initiator": iv, "responder": rv}
        check_after_move(r, ini, res, before, res_before, iv, rv, new)
        if in_uml():
            # Every ping reply since the change means one more outbound ESP packet each side.
            replied = sum(1 for t in ping.times() if t > t0)
            same_child = iv["spi_in"] == before["spi_in"]
            for p, v in ((ini, iv), (res, rv)):
                floor = oseq0[id(p)] + replied if same_child else None
                for problem in kernel_path_problems(p.ns, v, floor):
                    r.problem(False, f"after the switch: {problem}")
            log(f"  kernel SAs (initiator): {[sa for sa in xfrm_states(ini.ns) if sa['spi'] == iv['spi_out']]}")
        d_after, d_total = delta(c1, c2), delta(c0, c2)
        r.facts["esp_packets_after_switch"] = d_after
        log(f"  ESP packets at the responder in the 1.5 s after the switch: {d_after} (whole change: {d_total})")
        r.problem(d_after.get("in_new", 0) > 50 and d_after.get("out_new", 0) > 50,
                  f"ESP does not flow to and from {new} after the switch: {d_after}")
        r.problem(d_after.get("in_old", 0) == 0 and d_after.get("out_old", 0) == 0,
                  f"ESP still flows on {old} after the switch: {d_after}")
        m_new, m_old = mapping_to(topo.nat, new), mapping_to(topo.nat, old)
        r.facts["nat_mapping_new"] = m_new
        if m_new is None:
            r.problem(False, f"the NAT has no mapping {INI_ADDR}:4500 -> {new}:4500: {nat_mappings(topo.nat)}")
        else:
            o, rep = m_new["orig"], m_new["reply"]
            log(f"  NAT mapping: {o['src']}:{o['sport']} -> {o['dst']}:{o['dport']} as {rep['dst']}:{rep['dport']}, "
                f"packets out {o.get('packets')} / in {rep.get('packets')}"
                + (", assured" if m_new["assured"] else ""))
            r.problem(rep["dst"] == NAT_PUB and rv["remote"] == (NAT_PUB, rep["dport"]),
                      f"the responder sees the initiator at {rv['remote']}, the NAT maps it to "
                      f"{rep['dst']}:{rep['dport']}")
            r.problem(o.get("packets", 0) > 50 and rep.get("packets", 0) > 50,
                      f"the NAT's mapping to {new} carries too little traffic: {m_new}")
        if m_old is not None:
            log(f"  the NAT's old mapping to {old}: packets out {m_old['orig'].get('packets')} / "
                f"in {m_old['reply'].get('packets')}")
    elif r.outcome == "deleted":
        time.sleep(1.0)
    ping.stop()
    r.trace = ping.trace(t0)

    st = ping.stats()
    r.metrics.update({"gap_ms": st["gap_ms"], "lost": st["lost"], "replies": st["replies"]})
    times = ping.times()
    if r.outcome == "moved":
        # The stall the change caused: the longest gap between replies that ends between
        # the change and a second after both peers showed the new address.
        sl = ping.stall(t0, t_moved + 1.0)
        first = next((t for t in times if t > t0), None)
        end = sl["stall_end"] if sl["stall_ms"] and sl["stall_ms"] > 3 * ping.interval * 1000 else first
        r.metrics["stall_ms"] = sl["stall_ms"]
        r.metrics["resume_ms"] = (end - t0) * 1000 if end else None
        r.metrics["replies_after"] = sum(1 for t in times if t > t_moved)
        r.problem(r.metrics["replies_after"] > 100,
                  f"traffic did not resume for good after the switch: {r.metrics['replies_after']} replies "
                  f"in the {times[-1] - t_moved if times else 0:.1f}s after it")
    else:
        # Traffic never came back: the stall lasts from the last reply before the end.
        last_t = max((t for t in times), default=t0)
        r.metrics["stall_ms"] = (time.time() - last_t) * 1000
        r.metrics["resume_ms"] = None
        r.metrics["replies_after"] = sum(1 for t in times if t > t0 + 1.0)

    # ------------------------------------------------------------- what each side did
    for p in (ini, res):
        if p.kind == MOBIKED:
            s0, s1 = stats0[id(p)], p.stats()
            role = "initiator" if p is ini else "responder"
            r.facts[f"{role}_stats_delta"] = {
                "automatic_switches": s1.get("automatic_switches", 0) - s0.get("automatic_switches", 0),
                "automatic_moves": s1.get("automatic_moves", 0) - s0.get("automatic_moves", 0),
                "ike_established": s1["ike"]["established"] - s0["ike"]["established"],
                "child_established": s1["child"]["established"] - s0["child"]["established"]}
    for p in (ini, res):
        if p.kind == STRONGSWAN:
            text = p.log_text()[swan_log0[id(p)]:]
            role = "initiator" if p is ini else "responder"
            r.facts[f"charon_{role}_after_change"] = summarize_charon(text)
        else:
            text = p.log_text()[mob_log0[id(p)]:]
            role = "initiator" if p is ini else "responder"
            r.facts[f"mobiked_{role}_switch_lines"] = [
                ln for ln in text.splitlines() if re.search(r"switch", ln, re.I)][:20]
            # Requests it started after the change (logged at debug level only).
            sent: dict[str, int] = {}
            for task in re.findall(r"\bsending (\S+) request \d+", text):
                sent[task] = sent.get(task, 0) + 1
            r.facts[f"mobiked_{role}_requests"] = sent

    if ini.kind == MOBIKED and res.kind == MOBIKED:
        check_mobiked_pair(r, scenario)
    log(f"  {r.pairing}, scenario {scenario}: outcome {r.outcome}; longest ping gap {fmt_ms(r.metrics['gap_ms'])}, "
        f"stall at the change {fmt_ms(r.metrics['stall_ms'])}, replies resumed {fmt_ms(r.metrics['resume_ms'])} "
        f"after the change; {st['replies']} replies, {st['lost']} lost")
    return r


def check_after_move(r: Result, ini: Peer, res: Peer, before: dict, res_before: dict, iv: dict, rv: dict,
                     new: str = NEW) -> None:
    """Same SAs (no rekeying), both peers on the new path (the responder's `new`)."""
    r.problem(iv["spi_i"] == before["spi_i"] and iv["spi_r"] == before["spi_r"],
              f"the IKE SA was re-keyed or replaced: {before['spi_i']}/{before['spi_r']} -> "
              f"{iv['spi_i']}/{iv['spi_r']}")
    r.problem(rv["spi_i"] == iv["spi_i"] and rv["spi_r"] == iv["spi_r"],
              f"the peers' IKE SPIs differ: initiator {iv['spi_i']}/{iv['spi_r']}, "
              f"responder {rv['spi_i']}/{rv['spi_r']}")
    same_child = (iv["spi_in"], iv["spi_out"]) == (before["spi_in"], before["spi_out"]) and \
                 (rv["spi_in"], rv["spi_out"]) == (res_before["spi_in"], res_before["spi_out"])
    if STRONGSWAN in (ini.kind, res.kind) and not same_child:
        # charon on kernel-libipsec cannot change a Child SA's addresses and re-keys it
        # after every move (see mobike_scenarios.LIBIPSEC_REKEY): reported, not a failure.
        r.note(f"the Child SA was re-keyed by strongSwan after the move (kernel-libipsec): "
               f"{before['spi_in']}/{before['spi_out']} -> {iv['spi_in']}/{iv['spi_out']}")
    else:
        r.problem(same_child, f"the Child SA was re-keyed or replaced: initiator in/out "
                              f"{before['spi_in']}/{before['spi_out']} -> {iv['spi_in']}/{iv['spi_out']}, responder "
                              f"{res_before['spi_in']}/{res_before['spi_out']} -> {rv['spi_in']}/{rv['spi_out']}")
    r.problem(rv["spi_in"] == iv["spi_out"] and rv["spi_out"] == iv["spi_in"],
              f"the peers' Child SPIs differ: initiator {iv['spi_in']}/{iv['spi_out']}, "
              f"responder {rv['spi_in']}/{rv['spi_out']}")
    r.problem(iv["children"] == 1 and rv["children"] == 1,
              f"expected one Child SA each, initiator {iv['children']}, responder {rv['children']}")
    r.problem(iv["local"] == before["local"] and iv["remote"] == (new, 4500),
              f"the initiator uses {iv['local']} -> {iv['remote']}, expected {before['local']} -> ({new}, 4500)")
    r.problem(iv["nat_local"], "the initiator no longer sees its NAT")
    r.problem(rv["local"] == (new, 4500) and rv["remote"][0] == NAT_PUB,
              f"the responder uses {rv['local']} <- {rv['remote']}, expected ({new}, 4500) <- {NAT_PUB}")
    if res.kind == MOBIKED:
        r.problem(not rv.get("switching_to"), f"the responder still shows a switch in flight: {rv.get('switching_to')}")


def check_mobiked_pair(r: Result, scenario: int) -> None:
    """mobiked on both ends: no rekeying at all, the switch automatic exactly when the
    scenario is."""
    for role in ("initiator", "responder"):
        d = r.facts.get(f"{role}_stats_delta", {})
        r.problem(d.get("ike_established") == 0 and d.get("child_established") == 0,
                  f"mobiked {role} established new SAs during the change (a rekey?): {d}")
        rekeys = {k: v for k, v in r.facts.get(f"mobiked_{role}_requests", {}).items()
                  if k in ("IKE_REKEY", "CHILD_REKEY", "CHILD_CREATE")}
        r.problem(not rekeys, f"mobiked {role} started rekey exchanges during the change: {rekeys}")
    for role in ("initiator", "responder"):
        bad = [ln for ln in r.facts.get(f"mobiked_{role}_switch_lines", [])
               if re.search(r"refused|switch failed|cannot switch", ln)]
        r.problem(not bad, f"mobiked {role}: the switch did not go straight to its target: {bad}")
    d = r.facts.get("responder_stats_delta", {})
    want = 0 if scenario == 1 else 1
    r.problem(d.get("automatic_switches") == want,
              f"mobiked responder: automatic_switches went up by {d.get('automatic_switches')}, expected {want}")
    r.problem(r.facts.get("initiator_stats_delta", {}).get("automatic_moves") == 0,
              f"mobiked initiator moved by itself: {r.facts.get('initiator_stats_delta')}")


def summarize_charon(text: str) -> dict:
    """What charon's log shows after the change: the INFORMATIONAL requests it parsed and
    sent, paths it checked, peer addresses it learnt, address changes, retransmissions,
    giving up, deletes."""
    def grab(rx, limit=12):
        return [ln.strip() for ln in re.findall(rx, text, re.M)][:limit]
    return {
        "parsed_informational_requests": grab(r"^.*parsed INFORMATIONAL request \d+ \[[^\]]*\].*$"),
        "generated_informational_requests": grab(r"^.*generating INFORMATIONAL request \d+ \[[^\]]*\].*$"),
        "peer_addresses": grab(r"^.*got additional MOBIKE peer address.*$"),
        "checking_path": grab(r"^.*checking path.*$"),
        "address_changes": grab(r"^.*(?:remote address changed|requesting address change|sending address list "
                                r"update|updating IKE_SA|detected changes in NAT mappings|no route found|"
                                r"keeping connection path|no valid path found).*$"),
        "retransmits": len(re.findall(r"retransmit \d+ of request", text)),
        "giving_up": grab(r"^.*giving up after.*$"),
        "deleting": grab(r"^.*(?:state change: \S+ => (?:DELETING|DESTROYING)|deleting IKE_SA|closing CHILD_SA).*$"),
        "unknown_notifies": grab(r"^.*(?:N\(\d+\)|N\(UNKNOWN|" + str(SWITCH_NOTIFY) + r").*$"),
    }


# --------------------------------------------------------------------------- test driver


def requires(strongswan: bool = False) -> None:
    require_netns()
    require_commands("iptables", "ping")
    if strongswan:
        require_strongswan()
    find_binary("mobiked")
    find_binary("mobikectl")


def run_checked(lab: Lab, scenario: int, ini_kind: str = MOBIKED, res_kind: str = MOBIKED) -> Result:
    """run_scenario for a netns test: any problem fails the test."""
    r = run_scenario(lab, scenario, ini_kind, res_kind)
    for k, v in r.facts.items():
        log(f"  {k}: {json.dumps(v)}")
    if ini_kind == MOBIKED and res_kind == MOBIKED:
        check(r.outcome == "moved", f"the SA did not move to {addresses(scenario)[1]}: outcome {r.outcome}")
    if r.problems:
        raise Failure("; ".join(r.problems))
    return r
