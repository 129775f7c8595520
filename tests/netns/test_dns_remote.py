#!/usr/bin/env python3
"""The gateway named by DNS: a mobiked client with remote_addrs = ["vpn.example.test"]
resolves the name through the system's resolver when it initiates, again once every
address it had failed, and for an established SA whose MOBIKE probing found no path to the
gateway. The name server is dnsmasq in the NAT's namespace, the only one in
the client namespace's resolv.conf (/etc/netns/<namespace>/resolv.conf, which `ip netns
exec` mounts over /etc/resolv.conf); the gateway is mobiked (PSK, userspace data plane)
behind the MASQUERADE NAT:

netns-params: resolve fallback reresolve ipv6 mobike

    ini (10.1.0.2, 192.0.2.1 on lo) -- nat (in0 10.1.0.1 dnsmasq:53 | out0 198.51.100.2) -- res (198.51.100.10, .20,
                                                                                               203.0.113.1 on lo)

The client dials with retransmit_timeout = 0.5 and retransmit_tries = 2: an address that
never answers is given up after about 3 s.

Cases:
    resolve     vpn.example.test has one A record, 198.51.100.10. `mobikectl initiate home`
                answers with the IKE SA's id; the client logs "resolved vpn.example.test to
                198.51.100.10", its IKE SA runs to .10 and a ping between the inner addresses
                gets replies. A second connection naming nowhere.example.test (no such name:
                dnsmasq answers NXDOMAIN for example.test) is refused to `mobikectl
                initiate` with "cannot resolve nowhere.example.test: ...", and the daemon runs
                on (its SA still up).
    fallback    two A records, .10 and .20, while the gateway drops every datagram to both
                (iptables). Once the client has dialled the first address dnsmasq gave (its
                order rotates), the other is let through: after the first one's
                retransmissions the client dials the second and establishes there, ping
                through; the first got nothing but unanswered IKE_SA_INITs (its IKE SA
                failed, no second lookup was needed).
    reresolve   the name resolves to 198.51.100.30, an address the NAT blackholes. While the
                client retransmits to it, dnsmasq's hosts file is changed to .10 (SIGHUP).
                When .30 has failed the client resolves the name again, logs the new
                address and establishes to .10, ping through.
    ipv6        IPv6 besides the NAT (ini 2001:db8:1::2/64 -- nat routes -- res
                2001:db8:2::10/64) and both an A (.10) and an AAAA (2001:db8:2::10) record:
                the client dials the address getaddrinfo sorts first (IPv6, RFC 6724) and
                establishes over IPv6; the ping between the inner IPv4 addresses gets replies
                through it.
    mobike      the gateway is renumbered under an established SA and cannot tell the
                client: it has only 198.51.100.10 (.20 removed before, so it announced no
                other address), drops what it sends from .10 (iptables OUTPUT), loses .10
                and gets .30, and the name now resolves to .30. The client (switch = false,
                dpd_delay 2s) finds no path in its probing, logs that it looks the name up
                again, resolves .30 and probes it: the same IKE SA and Child SA (SPIs) move
                to .30 on both sides, ping through.

Run by hand (root, a Release build):
    MOBIKE_BUILD_DIR=build/release python3 tests/netns/test_dns_remote.py resolve
"""

import json
import os
import re
import signal
import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Lab, Namespace, check, find_binary, log, netns_param, require_commands,  # noqa: E402
                   require_netns, run_test, wait_until)
from topology import INI_INNER, RES_ADDR, RES_ADDR2, RES_INNER, NatTopology, nat_topology  # noqa: E402

NAME = "vpn.example.test"
DEAD = "198.51.100.30"  # nobody's: the NAT blackholes it
INI6, NAT6_IN, NAT6_OUT, RES6 = "2001:db8:1::2", "2001:db8:1::1", "2001:db8:2::1", "2001:db8:2::10"
PSK = "mobike-test-psk-0123456789"


class Dnsmasq:
    """dnsmasq on the NAT's inside address, answering for example.test only from a hosts
    file (nothing else, NXDOMAIN for other names there); SIGHUP re-reads the file."""

    def __init__(self, lab: Lab, ns: Namespace, listen: str):
        self.hosts = lab.dir / "dns-hosts"
        self.proc = None
        self.lab, self.ns, self.listen = lab, ns, listen

    def records(self, *addresses: str) -> None:
        self.hosts.write_text("".join(f"{a} {NAME}\n" for a in addresses))
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGHUP)  # `ip netns exec` execs dnsmasq: the same pid

    def start(self, client: Namespace, *addresses: str) -> "Dnsmasq":
        self.records(*addresses)
        self.proc = self.ns.spawn(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                                   "--no-hosts", f"--addn-hosts={self.hosts}", "--local=/example.test/",
                                   f"--listen-address={self.listen}", "--bind-interfaces", "--port=53",
                                   "--user=root", f"--pid-file={self.lab.dir / 'dnsmasq.pid'}", "--log-queries",
                                   "--log-facility=-"], name="dnsmasq")
        self.proc.wait_for_log(r"read .*dns-hosts", 10)
        client.etc_file("resolv.conf", f"nameserver {self.listen}\noptions timeout:1 attempts:2\n")
        return self

    def lookup(self, client: Namespace) -> list[str]:
        """What the client's namespace resolves the name to, as getent shows it."""
        out = client.run(["getent", "ahosts", NAME], check=False).stdout
        seen = []
        for line in out.splitlines():
            a = line.split()[0]
            if a not in seen:
                seen.append(a)
        return seen


def gateway(lab: Lab, t: NatTopology) -> Mobiked:
    return Mobiked(lab, t.res, "gateway", dataplane="userspace").start([MConn(
        "clients", local_id="gw.mobike.test", remote_id=None, psk=PSK, remote_addrs=["%any"],
        local_ts=[RES_INNER + "/32"], remote_ts=[INI_INNER + "/32"], dpd_delay="60s")])


def client(lab: Lab, t: NatTopology, more: list[MConn] | None = None, **kw) -> Mobiked:
    """The client's connection "home" to NAME (kw: more MConn fields), and `more`."""
    conn = MConn("home", local_id="client.mobike.test", remote_id="gw.mobike.test", psk=PSK, remote_addrs=[NAME],
                 local_ts=[INI_INNER + "/32"], remote_ts=[RES_INNER + "/32"], **{"dpd_delay": "60s", **kw})
    d = Mobiked(lab, t.ini, "client", dataplane="userspace", retransmit_timeout=0.5, retransmit_tries=2)
    return d.start([conn, *(more or [])])


def initiate(cl: Mobiked) -> int:
    r = cl.ctl("initiate", "home", check=False)
    check(r.returncode == 0, f"mobikectl initiate home failed ({r.returncode}): {r.stdout}{r.stderr}")
    m = re.search(r'"id"\s*:\s*(\d+)', r.stdout) or re.search(r"(\d+)", r.stdout)
    check(m is not None, f"mobikectl initiate home did not answer with an IKE SA id: {r.stdout!r}")
    return int(m.group(1))


def ping(ns: Namespace, what: str) -> None:
    r = ns.run(["ping", "-n", "-c", "5", "-i", "0.2", "-w", "10", "-I", INI_INNER, RES_INNER], check=False)
    m = re.search(r"(\d+) received", r.stdout)
    received = int(m.group(1)) if m else 0
    check(received >= 3, f"ping {INI_INNER} -> {RES_INNER} {what}: {received} of 5 replies\n{r.stdout}")
    log(f"ping {INI_INNER} -> {RES_INNER} {what}: {received} of 5 replies")


def dialled(cl: Mobiked) -> list[str]:
    """Addresses the client sent IKE_SA_INIT to, in order (the engine's "initiating to")."""
    return [m.group(1) for m in re.finditer(r"initiating to \[?([0-9a-f.:]+?)\]?:500\b", cl.log_text())]


def resolved(cl: Mobiked) -> list[list[str]]:
    return [m.group(1).split(", ") for m in re.finditer(rf"resolved {re.escape(NAME)} to ([0-9a-f.:, ]+)$",
                                                        cl.log_text(), re.M)]


def established_to(cl: Mobiked, address: str, timeout: float) -> dict:
    sa = cl.established("home", timeout)
    check(sa["remote"]["addr"] == address, f"the client's IKE SA runs to {sa['remote']['addr']}, not {address}")
    return sa


# --------------------------------------------------------------------------- cases


def case_resolve(lab: Lab) -> None:
    t = nat_topology(lab)
    dns = Dnsmasq(lab, t.nat, t.NAT_INSIDE).start(t.ini, RES_ADDR)
    check(dns.lookup(t.ini) == [RES_ADDR], f"the client's namespace resolves {NAME} to {dns.lookup(t.ini)}")
    gw = gateway(lab, t)
    nowhere = MConn("nowhere", local_id="client.mobike.test", remote_id="gw.mobike.test", psk=PSK,
                    remote_addrs=["nowhere.example.test"], local_ts=[INI_INNER + "/32"], remote_ts=[RES_INNER + "/32"])
    cl = client(lab, t, [nowhere])
    sa_id = initiate(cl)
    cl.proc.wait_for_log(rf"connection 'home': resolved {re.escape(NAME)} to {re.escape(RES_ADDR)}$", 5)
    sa = established_to(cl, RES_ADDR, 10)
    check(sa["id"] == sa_id, f"the IKE SA is #{sa['id']}, mobikectl initiate said #{sa_id}")
    check(dialled(cl) == [RES_ADDR], f"the client dialled {dialled(cl)}")
    check(gw.established("clients", 5)["remote"]["addr"] == t.NAT_OUTSIDE, "the gateway's SA is not through the NAT")
    ping(t.ini, f"through the SA to {NAME}")
    # list-conns shows the connection as written: the name, not what it resolved to.
    conns = {c["name"]: c for c in json.loads(cl.ctl("list-conns", "--json").stdout)}
    check(conns.get("home", {}).get("remote_addrs") == [NAME] and
          conns.get("nowhere", {}).get("remote_addrs") == ["nowhere.example.test"],
          f"list-conns: {conns}")
    text = cl.ctl("list-conns").stdout
    check(f"home: IKEv2, %any...{NAME}" in text, f"list-conns text:\n{text}")

    r = cl.ctl("initiate", "nowhere", check=False)
    log(f"mobikectl initiate nowhere: rc {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
    check(r.returncode == 1 and "cannot resolve nowhere.example.test: " in r.stdout + r.stderr,
          f"initiating to an unknown name was not refused as unresolvable: rc {r.returncode}: {r.stdout}{r.stderr}")
    cl.proc.wait_for_log(r"connection 'nowhere': cannot resolve nowhere\.example\.test: \S", 2)
    check(cl.proc.alive() and cl.sa("nowhere") is None, "the client died or made an SA for the unknown name")
    established_to(cl, RES_ADDR, 2)
    ping(t.ini, "after the failed lookup")


def case_fallback(lab: Lab) -> None:
    t = nat_topology(lab)
    dns = Dnsmasq(lab, t.nat, t.NAT_INSIDE).start(t.ini, RES_ADDR, RES_ADDR2)
    check(sorted(dns.lookup(t.ini)) == sorted([RES_ADDR, RES_ADDR2]), f"lookup: {dns.lookup(t.ini)}")
    gw = gateway(lab, t)
    for a in (RES_ADDR, RES_ADDR2):
        t.res.iptables("-I", "INPUT", "-d", a, "-p", "udp", "-j", "DROP")
    cl = client(lab, t)
    initiate(cl)
    first = wait_until(lambda: (dialled(cl) or [None])[0], 5, "the client's first IKE_SA_INIT")
    names = resolved(cl)
    check(len(names) == 1 and sorted(names[0]) == sorted([RES_ADDR, RES_ADDR2]) and names[0][0] == first,
          f"the client resolved {names} and dialled {first} first")
    second = RES_ADDR2 if first == RES_ADDR else RES_ADDR
    t.res.iptables("-D", "INPUT", "-d", second, "-p", "udp", "-j", "DROP")
    log(f"the client dialled {first} first; {second} answers from now on")
    sa = established_to(cl, second, 15)
    check(dialled(cl) == [first, second], f"the client dialled {dialled(cl)}, expected {first} then {second}")
    check(re.search(r"IKE SA failed: IKE_SA_INIT request not answered after 2 retransmissions", cl.log_text()),
          f"no unanswered IKE_SA_INIT to {first} in the client's log")
    check(len(resolved(cl)) == 1, f"the client resolved {NAME} again although {second} was left: {resolved(cl)}")
    g = gw.established("clients", 5)
    check(g["local"]["addr"] == second, f"the gateway's SA is on {g['local']['addr']}, not {second}")
    drops = t.res.iptables("-L", "INPUT", "-v", "-n", "-x").stdout
    m = re.search(rf"^\s*(\d+)\s+\d+\s+DROP\s.*{re.escape(first)}\s*$", drops, re.M)
    check(m is not None and int(m.group(1)) >= 3,
          f"the gateway did not drop the client's 3 IKE_SA_INITs to {first}:\n{drops}")
    log(f"established to {second} after {m.group(1)} datagrams to {first} went unanswered: SA #{sa['id']}")
    ping(t.ini, f"through the SA to {second}")


def case_reresolve(lab: Lab) -> None:
    t = nat_topology(lab)
    t.nat.ip("route", "add", "blackhole", DEAD + "/32")
    dns = Dnsmasq(lab, t.nat, t.NAT_INSIDE).start(t.ini, DEAD)
    gateway(lab, t)
    cl = client(lab, t)
    initiate(cl)
    cl.proc.wait_for_log(rf"initiating to {re.escape(DEAD)}:500", 5)
    dns.records(RES_ADDR)
    wait_until(lambda: dns.lookup(t.ini) == [RES_ADDR], 2, f"dnsmasq to answer {RES_ADDR} after SIGHUP")
    log(f"the client dialled {DEAD}; the name now resolves to {RES_ADDR}")
    sa = established_to(cl, RES_ADDR, 15)
    check(resolved(cl) == [[DEAD], [RES_ADDR]], f"the client's lookups: {resolved(cl)}")
    check(dialled(cl) == [DEAD, RES_ADDR], f"the client dialled {dialled(cl)}")
    check(re.search(rf"no answer from {re.escape(DEAD)}: resolving again", cl.log_text()),
          "the client did not say why it resolved again")
    log(f"established to {RES_ADDR} after a second lookup: SA #{sa['id']}")
    ping(t.ini, f"through the SA to {RES_ADDR}")


def case_ipv6(lab: Lab) -> None:
    t = nat_topology(lab)
    t.ini.add_address(t.INI_DEV, INI6 + "/64")
    t.nat.add_address(t.NAT_IN_DEV, NAT6_IN + "/64")
    t.nat.add_address(t.NAT_OUT_DEV, NAT6_OUT + "/64")
    t.res.add_address(t.RES_DEV, RES6 + "/64")
    t.nat.sysctl("net.ipv6.conf.all.forwarding", 1)
    t.ini.ip("-6", "route", "add", "default", "via", NAT6_IN)
    t.res.ip("-6", "route", "add", "2001:db8:1::/64", "via", NAT6_OUT)
    # The first packets wait for neighbour discovery behind the link-local addresses' DAD.
    wait_until(lambda: t.ini.run(["ping", "-n", "-c", "1", "-W", "1", RES6], check=False).returncode == 0, 10,
               f"an IPv6 path from the client to {RES6}")
    dns = Dnsmasq(lab, t.nat, t.NAT_INSIDE).start(t.ini, RES_ADDR, RES6)
    check(dns.lookup(t.ini)[:1] == [RES6], f"getaddrinfo does not sort {RES6} first: {dns.lookup(t.ini)}")
    gateway(lab, t)
    cl = client(lab, t)
    initiate(cl)
    sa = established_to(cl, RES6, 10)
    names = resolved(cl)
    check(len(names) == 1 and names[0][0] == RES6 and RES_ADDR in names[0], f"the client's lookups: {names}")
    check(dialled(cl) == [RES6], f"the client dialled {dialled(cl)}")
    check(sa["local"]["addr"] == INI6, f"the client's IKE SA runs from {sa['local']['addr']}, not {INI6}")
    ping(t.ini, f"through the SA to {RES6}")


def spis(sa: dict) -> tuple:
    kids = [c for c in sa["children"] if c["state"] == "INSTALLED"]
    return sa["spi_i"], sa["spi_r"], tuple(sorted((c["spi_in"], c["spi_out"]) for c in kids))


def case_mobike(lab: Lab) -> None:
    t = nat_topology(lab)
    t.res.del_address(t.RES_DEV, RES_ADDR2 + "/24")
    dns = Dnsmasq(lab, t.nat, t.NAT_INSIDE).start(t.ini, RES_ADDR)
    gw = gateway(lab, t)
    cl = client(lab, t, dpd_delay="2s", extra={"switch": False})
    initiate(cl)
    before = established_to(cl, RES_ADDR, 10)
    check(before["peer_addresses"] == [], f"the gateway announced other addresses: {before['peer_addresses']}")
    ping(t.ini, f"through the SA to {RES_ADDR}")

    # Renumbered behind the client's back: nothing the gateway sends from .10 leaves.
    t.res.iptables("-A", "OUTPUT", "-s", RES_ADDR, "-j", "DROP")
    t.res.del_address(t.RES_DEV, RES_ADDR + "/24")
    t.res.add_address(t.RES_DEV, DEAD + "/24")
    dns.records(DEAD)
    wait_until(lambda: dns.lookup(t.ini) == [DEAD], 2, f"dnsmasq to answer {DEAD} after SIGHUP")
    log(f"the gateway moved from {RES_ADDR} to {DEAD} unannounced; the name resolves to {DEAD}")

    def moved():
        sa = cl.sa("home")
        return sa if sa and sa["remote"]["addr"] == DEAD else None
    after = wait_until(moved, 30, f"the client's IKE SA on {DEAD}")
    cl.proc.wait_for_log(rf"IKE SA {before['id']} has no path to the peer: looking up {re.escape(NAME)} again", 1)
    check(resolved(cl) == [[RES_ADDR], [DEAD]], f"the client's lookups: {resolved(cl)}")
    check(after["id"] == before["id"] and spis(after) == spis(before),
          f"the SA was not moved but replaced: #{before['id']} {spis(before)} -> #{after['id']} {spis(after)}")
    g = gw.established("clients", 5)
    check(g["local"]["addr"] == DEAD and g["remote"]["addr"] == t.NAT_OUTSIDE,
          f"the gateway's SA runs {g['local']} <- {g['remote']}")
    check(dialled(cl) == [RES_ADDR], f"the client initiated again: {dialled(cl)}")
    log(f"IKE SA #{after['id']} moved to {DEAD} with its SPIs")
    ping(t.ini, f"through the SA after its move to {DEAD}")


CASES = {
    "resolve": (case_resolve, "a gateway named by DNS: resolved, established, ping; an unknown name refused"),
    "fallback": (case_fallback, "a name with two addresses: the first never answers, the second is dialled"),
    "reresolve": (case_reresolve, "every address of the name failed: resolved again, the new address answers"),
    "ipv6": (case_ipv6, "a name with an AAAA and an A record: established over IPv6"),
    "mobike": (case_mobike, "the gateway renumbered unannounced: no path, the name looked up again, the SA moves"),
}


def requires() -> None:
    require_netns()
    require_commands("iptables", "ping", "getent", "dnsmasq")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    param = netns_param(CASES)
    fn, title = CASES[param]
    run_test(fn, title, timeout=90, requires=requires)
