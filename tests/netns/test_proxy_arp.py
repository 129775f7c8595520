#!/usr/bin/env python3
"""Proxy ARP / NDP for a client's inner address (platform::ProxyArp, driven through
tests/netns/proxy_arp_probe) on a LAN of namespaces, once per address family:

    host .100 ---+
                 |  lan: a bridge, 10.60.0.0/24 and fd60::/64
    gwa  .1   ---+---- d0 -- cla  .201
    gwb  .2   ---+---- d0 -- clb  .201

Both gateways route the client's inner address .201 into d0, as the daemon routes it
into its TUN device; d0 is a veth to a namespace that holds the address, so that pings
get answers (a dummy interface would swallow them, and not every kernel has dummy
interfaces). Steps:
  before: host cannot resolve .201;
  a proxy entry on gwa while gwa's LAN interface does not forward: still no answer;
  enable_sysctls() on gwa; a proxy entry for .202, which gwa routes into the LAN itself:
    no answer for IPv4, an answer for IPv6 (the kernel checks routes for ARP only);
  host resolves .201 to gwa's MAC, and its pings reach cla;
  the SA moves (remove on gwa, add on gwb): host's existing entry switches to gwb's MAC
    from the announcement alone, host sending no request; its pings then go through gwb;
  remove on gwb, with both routes still in place and proxy_arp 0: no answer any more;
  an announcement creates no entry in a host that has none;
  gwb's LAN link going down and up: the kernel has dropped gwb's proxy entries.
host keeps Linux's default sysctls (arp_accept 0, accept_untracked_na 0, ...): a plain
LAN host takes the announcements as they come.

netns-params: v4 v6
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from netns import (Lab, Namespace, Skip, check, find_binary, log, netns_param,  # noqa: E402
                   require_commands, require_netns, run_test, wait_until)


@dataclass(frozen=True)
class Plan:
    v6: bool
    prefix_len: int
    gwa: str
    gwb: str
    host: str
    client: str  # the Child SA's remote traffic selector, routed into d0
    lan_routed: str  # in the LAN's subnet and routed into the LAN by the gateways


PLANS = {
    "v4": Plan(False, 24, "10.60.0.1", "10.60.0.2", "10.60.0.100", "10.60.0.201", "10.60.0.202"),
    "v6": Plan(True, 64, "fd60::1", "fd60::2", "fd60::100", "fd60::201", "fd60::202"),
}
D0_LINK_LOCAL = "fe80::1"  # the gateways' address on d0, the clients' IPv6 router


class Probe:
    def __init__(self, ns: Namespace):
        self.ns = ns
        self.binary = str(find_binary("proxy_arp_probe"))

    def run(self, *args: str, expect_rc: int = 0) -> str:
        r = self.ns.run([self.binary, *args], check=False)
        check(r.returncode == expect_rc,
              f"{self.ns.role}: proxy_arp_probe {' '.join(args)} exited {r.returncode}, "
              f"expected {expect_rc}; stdout {r.stdout.strip()!r} stderr {r.stderr.strip()!r}")
        return r.stdout.strip() if expect_rc == 0 else r.stderr.strip()

    def ok(self, *args: str) -> str:
        """Runs a command that must succeed; returns the MAC the probe used."""
        out = self.run(*args)
        m = re.fullmatch(r"ok mac=([0-9a-f:]{17})", out)
        check(m is not None, f"{self.ns.role}: proxy_arp_probe {' '.join(args)} printed {out!r}")
        return m.group(1)


def mac_of(ns: Namespace, dev: str) -> str:
    return json.loads(ns.ip("-j", "link", "show", dev).stdout)[0]["address"]


def neighbour(ns: Namespace, address: str) -> dict | None:
    entries = json.loads(ns.ip("-j", "neigh", "show", address, "dev", "eth0").stdout or "[]")
    return entries[0] if entries else None


def lladdr(ns: Namespace, address: str) -> str | None:
    n = neighbour(ns, address)
    return n.get("lladdr") if n else None


def proxy_entries(ns: Namespace) -> list[str]:
    return [e["dst"] for e in json.loads(ns.ip("-j", "neigh", "show", "proxy", "dev", "eth0").stdout or "[]")]


def sysctl_value(ns: Namespace, path: str) -> str:
    return ns.run(["cat", f"/proc/sys/{path}"]).stdout.strip()


class Lan:
    def __init__(self, lab: Lab, plan: Plan):
        self.plan = plan
        self.lan = lab.namespace("lan")
        self.gwa = lab.namespace("gwa")
        self.gwb = lab.namespace("gwb")
        self.host = lab.namespace("host")
        self.cla = lab.namespace("cla")
        self.clb = lab.namespace("clb")
        if plan.v6:
            # Addresses usable at once: a link-local address still in duplicate address
            # detection could not source the gateways' Neighbour Advertisements.
            for ns in (self.lan, self.gwa, self.gwb, self.host, self.cla, self.clb):
                ns.sysctl("net.ipv6.conf.all.accept_dad", 0)
                ns.sysctl("net.ipv6.conf.default.accept_dad", 0)
        self.lan.ip("link", "add", "br0", "type", "bridge")
        self.lan.link_up("br0")
        for ns, address in ((self.gwa, plan.gwa), (self.gwb, plan.gwb), (self.host, plan.host)):
            port = f"p-{ns.role}"
            lab.veth(self.lan, port, ns, "eth0")
            self.lan.ip("link", "set", port, "master", "br0")
            ns.add_address("eth0", f"{address}/{plan.prefix_len}")
        for gw, client in ((self.gwa, self.cla), (self.gwb, self.clb)):
            lab.veth(gw, "d0", client, "eth0")
            client.add_address("eth0", f"{plan.client}/{128 if plan.v6 else 32}")
            gw.add_route(f"{plan.client}/{128 if plan.v6 else 32}", None, "d0")
            if plan.v6:
                gw.add_address("d0", f"{D0_LINK_LOCAL}/64")
                client.ip("-6", "route", "add", "default", "via", D0_LINK_LOCAL, "dev", "eth0")
                # ip6_forward() reads only the "all" switch, which sets every interface's;
                # the LAN interface's own is left to enable_sysctls().
                gw.sysctl("net.ipv6.conf.all.forwarding", 1)
                gw.sysctl("net.ipv6.conf.eth0.forwarding", 0)
            else:
                gw_address = plan.gwa if gw is self.gwa else plan.gwb
                client.ip("route", "add", "default", "via", gw_address, "dev", "eth0", "onlink")
                # The replies come in through d0; forwarding on the LAN interface is left
                # to enable_sysctls().
                gw.sysctl("net.ipv4.conf.d0.forwarding", 1)
            # Counts what each gateway forwards to its client.
            gw.iptables("-A", "FORWARD", "-d", plan.client, "-o", "d0", v6=plan.v6)
        # Counts the address resolution requests host sends.
        if plan.v6:
            self.host.iptables("-A", "OUTPUT", "-p", "icmpv6", "--icmpv6-type", "neighbour-solicitation",
                               v6=True)
        else:
            self.host.run(["arptables", "-A", "OUTPUT", "--opcode", "Request", "-j", "ACCEPT"])

    def forwarded(self, gw: Namespace) -> int:
        out = gw.iptables("-nvxL", "FORWARD", v6=self.plan.v6).stdout.splitlines()
        return int(out[2].split()[0])

    def requests_sent(self) -> int:
        if self.plan.v6:
            out = self.host.iptables("-nvxL", "OUTPUT", v6=True).stdout.splitlines()
            return int(out[2].split()[0])
        out = self.host.run(["arptables", "-L", "OUTPUT", "-v", "-n", "-x"]).stdout
        m = re.search(r"pcnt=(\d+)", out)
        check(m is not None, f"no counter in arptables' output:\n{out}")
        return int(m.group(1))

    def ping(self, address: str, wait: int = 2) -> bool:
        argv = ["ping", "-6" if self.plan.v6 else "-4", "-c1", f"-W{wait}", address]
        return self.host.run(argv, check=False).returncode == 0

    def forget(self) -> None:
        self.host.ip("neigh", "flush", "dev", "eth0")
        check(neighbour(self.host, self.plan.client) is None, "host's neighbour entry survived the flush")

    def unresolved(self, address: str, why: str) -> None:
        """host, asking afresh, gets no answer for address."""
        self.forget()
        check(not self.ping(address, wait=3), f"{why}: host's ping to {address} was answered")
        got = lladdr(self.host, address)
        check(got is None, f"{why}: host resolved {address} to {got}")

    def resolves_to(self, address: str, mac: str, why: str) -> None:
        """host, asking afresh, resolves address to mac and reaches it. The proxy answer
        to a broadcast request comes after a random delay of up to 0.8 s (proxy_delay),
        hence the retries."""
        self.forget()
        wait_until(lambda: self.ping(address), 10, f"{why}: host's ping to {address}")
        got = lladdr(self.host, address)
        check(got == mac, f"{why}: host resolved {address} to {got}, expected {mac}")


def test(lab: Lab, family: str) -> None:
    plan = PLANS[family]
    if plan.v6 and not Path("/proc/sys/net/ipv6").is_dir():
        raise Skip("IPv6 is disabled on this kernel")
    t = Lan(lab, plan)
    pa, pb = Probe(t.gwa), Probe(t.gwb)
    mac_a, mac_b = mac_of(t.gwa, "eth0"), mac_of(t.gwb, "eth0")
    fam = "6" if plan.v6 else "4"
    conf = f"net/ipv{fam}/conf/eth0"

    log("errors reach the caller")
    check("not Ethernet" in pa.run("add", "lo", plan.client, expect_rc=1), "lo accepted as a LAN interface")
    check("No such device" in pa.run("add", "eth9", plan.client, expect_rc=1), "a missing interface accepted")
    pa.run("add", "eth0", "not-an-address", expect_rc=2)

    log("before: nobody answers for the client's address")
    t.unresolved(plan.client, "before any proxy entry")

    log("a proxy entry on gwa, its LAN interface not forwarding")
    check(sysctl_value(t.gwa, f"{conf}/forwarding") == "0", "gwa's eth0 forwards already")
    check(pa.ok("add", "eth0", plan.client) == mac_a, "the probe announced a MAC other than eth0's")
    check(proxy_entries(t.gwa) == [plan.client], f"gwa's proxy entries: {proxy_entries(t.gwa)}")
    t.unresolved(plan.client, "proxy entry without forwarding")

    log("enable_sysctls() on gwa")
    pa.ok("sysctls", "eth0", fam)
    check(sysctl_value(t.gwa, f"{conf}/forwarding") == "1", "enable_sysctls left forwarding off")
    if plan.v6:
        check(sysctl_value(t.gwa, f"{conf}/proxy_ndp") == "1", "enable_sysctls left proxy_ndp off")
    else:
        check(sysctl_value(t.gwa, f"{conf}/proxy_arp") == "0", "enable_sysctls turned proxy_arp on")

    log("a proxy entry for an address gwa routes into the LAN itself")
    pa.ok("add", "eth0", plan.lan_routed)
    if plan.v6:
        # ndisc_recv_ns() looks at no route: the entry alone decides.
        t.forget()
        t.ping(plan.lan_routed, wait=3)
        got = lladdr(t.host, plan.lan_routed)
        check(got == mac_a, f"host resolved {plan.lan_routed} to {got}, expected gwa's {mac_a}: "
              "the kernel now checks routes before it answers for IPv6 proxy entries "
              "(update proxy_arp.h)")
    else:
        t.unresolved(plan.lan_routed, "proxy entry for an address routed into the LAN")
    pa.ok("remove", "eth0", plan.lan_routed)

    before_a, before_b = t.forwarded(t.gwa), t.forwarded(t.gwb)
    t.resolves_to(plan.client, mac_a, "gwa's proxy entry")
    check(t.forwarded(t.gwa) > before_a, "host's ping did not pass through gwa")
    check(t.forwarded(t.gwb) == before_b, "host's ping passed through gwb")

    log("the SA moves to gwb: the announcement alone updates host")
    pb.ok("sysctls", "eth0", fam)
    check(lladdr(t.host, plan.client) == mac_a, "host lost its entry for the client before the move")
    requests = t.requests_sent()
    pa.ok("remove", "eth0", plan.client)
    check(proxy_entries(t.gwa) == [], f"gwa's proxy entries after remove: {proxy_entries(t.gwa)}")
    moved_at = time.monotonic()
    check(pb.ok("add", "eth0", plan.client) == mac_b, "the probe announced a MAC other than eth0's")
    wait_until(lambda: lladdr(t.host, plan.client) == mac_b, 2,
               f"host's entry for {plan.client} to change to gwb's {mac_b} "
               f"(now {lladdr(t.host, plan.client)})")
    log(f"host's entry changed {time.monotonic() - moved_at:.2f}s after gwb's add")
    check(t.requests_sent() == requests,
          f"host sent {t.requests_sent() - requests} request(s): the change was not the announcement's")
    before_a, before_b = t.forwarded(t.gwa), t.forwarded(t.gwb)
    check(t.ping(plan.client), "host's ping after the move was not answered")
    check(t.forwarded(t.gwb) > before_b, "host's ping after the move did not pass through gwb")
    check(t.forwarded(t.gwa) == before_a, "host's ping after the move passed through gwa")
    t.resolves_to(plan.client, mac_b, "gwb's proxy entry")

    log("remove on gwb: nobody answers any more, though both gateways still route the address")
    pb.ok("remove", "eth0", plan.client)
    pb.ok("remove", "eth0", plan.client)  # already gone: still success
    t.unresolved(plan.client, "after remove on both gateways")

    log("an announcement creates no entry in a host that has none")
    t.forget()
    pb.ok("announce", "eth0", plan.client)
    time.sleep(0.5)
    check(neighbour(t.host, plan.client) is None,
          f"host created an entry from the announcement: {neighbour(t.host, plan.client)}")

    log("the LAN link going down drops the kernel's proxy entries")
    pb.ok("add", "eth0", plan.client)
    check(proxy_entries(t.gwb) == [plan.client], f"gwb's proxy entries: {proxy_entries(t.gwb)}")
    t.gwb.ip("link", "set", "eth0", "down")
    t.gwb.ip("link", "set", "eth0", "up")
    check(proxy_entries(t.gwb) == [], f"gwb's proxy entries after down/up: {proxy_entries(t.gwb)}")


def requires() -> None:
    require_netns()
    require_commands("ping", "iptables", "ip6tables", "arptables")


if __name__ == "__main__":
    family = netns_param(PLANS)
    run_test(lambda lab: test(lab, family), f"proxy ARP / NDP ({family})", requires=requires)
