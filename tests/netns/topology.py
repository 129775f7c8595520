"""The test networks: namespaces joined by veth pairs, Linux NATs (iptables MASQUERADE),
and one address plan shared by all of them.

NAT topology (nat_topology; most tests, interop, switch scenarios 1 and 2):

    ini eth0 10.1.0.2/24 -- nat in0 10.1.0.1/24 | out0 198.51.100.2/24 -- res eth0 198.51.100.10/24, .20/24

    ini: default via 10.1.0.1. nat: MASQUERADE of 10.1.0.0/24 to 198.51.100.2, FORWARD
    only out->in for ESTABLISHED,RELATED (address-and-port-dependent filtering of
    conntrack).

Two uplinks behind two NATs (TwoUplinkTopology; the MOBIKE scenarios):

    ini eth0 10.1.0.2 -- nata in0 10.1.0.1 | out0 198.51.100.2 (+ .4) --+
                                                                        +-- wan br0 -- res eth0 198.51.100.10, .20
    ini eth1 10.2.0.2 -- natb in0 10.2.0.1 | out0 198.51.100.3 ---------+

    ini: default via 10.1.0.1 metric 100 (uplink A, preferred), via 10.2.0.1 metric 200
    (uplink B). Both NATs also drop packets from any source outside their inside prefix.

Multihomed responder (multihomed_responder_topology; switch scenario 3): two interfaces
on two routed segments, "wan" a router between the NAT's outside and both:

    ini eth0 10.1.0.2 -- nat in0 10.1.0.1 | out0 198.51.100.2/29 -- wan pn .1/29
                                        wan p0 198.51.100.9/29  -- res eth0 198.51.100.10/29 (default route metric 100)
                                        wan p1 198.51.100.17/29 -- res eth1 198.51.100.19/29 and
                                                                       .20/29 (default route metric 200)

Everywhere the inner addresses, the tunnel's traffic selectors, are 192.0.2.1/32 on
ini's lo and 203.0.113.1/32 on res's lo. They never appear on a wire outside a tunnel, so
the selectors never cover the IKE peers' own addresses (strongSwan refuses that), and
without a tunnel they are unreachable (no NAT routes them), so a ping between them that
succeeds went through the tunnel.
"""

from __future__ import annotations

from dataclasses import dataclass

from netns import Lab, Namespace, check

# The address plan (module docstring).
INI_ADDR = "10.1.0.2"          # the initiator; uplink A of the two-uplink topology
NAT_INSIDE = "10.1.0.1"        # its gateway, the NAT('s A) inside address
NAT_OUTSIDE = "198.51.100.2"   # the NAT('s A) public address
RES_ADDR = "198.51.100.10"     # the responder, the address the initiator dials
RES_ADDR2 = "198.51.100.20"    # the responder's second address
INI_INNER = "192.0.2.1"        # traffic selectors: 192.0.2.1/32 <-> 203.0.113.1/32
RES_INNER = "203.0.113.1"


def setup_nat(ns: Namespace, inside_cidr: str, out_dev: str, in_dev: str,
              udp_timeout: int | None = None) -> None:
    """MASQUERADE inside_cidr out of out_dev, forward only replies back in (conntrack's
    5-tuple match: address-and-port-dependent filtering)."""
    ns.sysctl("net.ipv4.ip_forward", 1)
    ns.iptables("-t", "nat", "-A", "POSTROUTING", "-s", inside_cidr, "-o", out_dev,
                "-j", "MASQUERADE")
    ns.iptables("-P", "FORWARD", "DROP")
    ns.iptables("-A", "FORWARD", "-i", in_dev, "-o", out_dev, "-j", "ACCEPT")
    ns.iptables("-A", "FORWARD", "-i", out_dev, "-o", in_dev, "-m", "conntrack",
                "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
    if udp_timeout is not None:
        # The conntrack sysctls exist once the NAT rule above has loaded conntrack.
        ns.sysctl("net.netfilter.nf_conntrack_udp_timeout", udp_timeout)
        ns.sysctl("net.netfilter.nf_conntrack_udp_timeout_stream", udp_timeout)


# --------------------------------------------------------------------------- NAT topology


@dataclass
class NatTopology:
    ini: Namespace
    nat: Namespace
    res: Namespace

    INI_ADDR = INI_ADDR
    NAT_INSIDE = NAT_INSIDE
    NAT_OUTSIDE = NAT_OUTSIDE
    RES_ADDR = RES_ADDR
    RES_ADDR2 = RES_ADDR2
    INI_INNER = INI_INNER
    RES_INNER = RES_INNER
    INI_DEV = "eth0"
    RES_DEV = "eth0"
    NAT_IN_DEV = "in0"
    NAT_OUT_DEV = "out0"


def nat_topology(lab: Lab, udp_timeout: int | None = None, bridge: bool = False) -> NatTopology:
    """ini -- nat -- res as in the module docstring. udp_timeout (seconds) shortens the
    NAT's UDP mapping lifetime for tests of mapping expiry. bridge puts a Linux bridge
    (br0 in a namespace "wan") between the NAT's outside and res, as on a provider edge:
    one more hop for every packet, same addresses."""
    t = NatTopology(lab.namespace("ini"), lab.namespace("nat"), lab.namespace("res"))
    lab.veth(t.ini, t.INI_DEV, t.nat, t.NAT_IN_DEV)
    if bridge:
        wan = lab.namespace("wan")
        lab.veth(t.nat, t.NAT_OUT_DEV, wan, "pn")
        lab.veth(wan, "pr", t.res, t.RES_DEV)
        wan.ip("link", "add", "br0", "type", "bridge")
        for dev in ("pn", "pr"):
            wan.ip("link", "set", dev, "master", "br0")
        wan.link_up("br0")
    else:
        lab.veth(t.nat, t.NAT_OUT_DEV, t.res, t.RES_DEV)
    t.ini.add_address(t.INI_DEV, t.INI_ADDR + "/24")
    t.ini.add_address("lo", t.INI_INNER + "/32")
    t.ini.add_route("default", via=t.NAT_INSIDE)
    t.nat.add_address(t.NAT_IN_DEV, t.NAT_INSIDE + "/24")
    t.nat.add_address(t.NAT_OUT_DEV, t.NAT_OUTSIDE + "/24")
    t.res.add_address(t.RES_DEV, t.RES_ADDR + "/24")
    t.res.add_address(t.RES_DEV, t.RES_ADDR2 + "/24")
    t.res.add_address("lo", t.RES_INNER + "/32")
    setup_nat(t.nat, "10.1.0.0/24", t.NAT_OUT_DEV, t.NAT_IN_DEV, udp_timeout)
    return t


# --------------------------------------------------------------------------- two uplinks


class TwoUplinkTopology:
    """The initiator with two uplinks behind two NATs (module docstring). Uplink B
    (ini eth1 <-> natb in0) exists from the start unless connect_b=False (it can be
    plugged in later with connect_b()); nat_a_second gives NAT A a second public address,
    198.51.100.4, which takes over when the primary one is deleted."""

    INI_A, GW_A, NAT_A_PUB = INI_ADDR, NAT_INSIDE, NAT_OUTSIDE
    NAT_A_PUB2 = "198.51.100.4"
    INI_B, GW_B, NAT_B_PUB = "10.2.0.2", "10.2.0.1", "198.51.100.3"
    RES_ADDR, RES_ADDR2 = RES_ADDR, RES_ADDR2
    INI_INNER, RES_INNER = INI_INNER, RES_INNER

    def __init__(self, lab: Lab, *, connect_b: bool = True, nat_a_second: bool = False):
        self.lab = lab
        self.ini, self.nata, self.natb, self.wan, self.res = (
            lab.namespace(r) for r in ("ini", "nata", "natb", "wan", "res"))
        lab.veth(self.ini, "eth0", self.nata, "in0")
        lab.veth(self.nata, "out0", self.wan, "pa")
        lab.veth(self.natb, "out0", self.wan, "pb")
        lab.veth(self.res, "eth0", self.wan, "pr")
        self.wan.ip("link", "add", "br0", "type", "bridge")
        for dev in ("pa", "pb", "pr"):
            self.wan.ip("link", "set", dev, "master", "br0")
        self.wan.link_up("br0")
        self.ini.add_address("eth0", self.INI_A + "/24")
        self.ini.add_address("lo", INI_INNER + "/32")
        self.ini.ip("route", "add", "default", "via", self.GW_A, "metric", "100")
        # Deleting the primary address must not take the secondary with it.
        self.nata.sysctl("net.ipv4.conf.all.promote_secondaries", 1)
        self.nata.sysctl("net.ipv4.conf.out0.promote_secondaries", 1)
        self.nata.add_address("in0", self.GW_A + "/24")
        self.nata.add_address("out0", self.NAT_A_PUB + "/24")
        if nat_a_second:
            # Same prefix as the responder: it reaches the new public address on-link.
            self.nata.add_address("out0", self.NAT_A_PUB2 + "/24")
        self.natb.add_address("out0", self.NAT_B_PUB + "/24")
        for nat, inside in ((self.nata, "10.1.0.0/24"), (self.natb, "10.2.0.0/24")):
            setup_nat(nat, inside, "out0", "in0")
            # Like a real CPE (BCP 38), never forward a foreign source un-translated: while
            # the initiator switches uplinks, packets still carrying the other uplink's
            # address may leave through this one.
            nat.iptables("-I", "FORWARD", "-i", "in0", "!", "-s", inside, "-j", "DROP")
        self.res.add_address("eth0", RES_ADDR + "/24")
        self.res.add_address("eth0", RES_ADDR2 + "/24")
        self.res.add_address("lo", RES_INNER + "/32")
        self.b_connected = False
        if connect_b:
            self.connect_b()

    def connect_b(self) -> None:
        """Plugs in uplink B: interface eth1 with 10.2.0.2, default route metric 200."""
        self.lab.veth(self.ini, "eth1", self.natb, "in0")
        self.natb.add_address("in0", self.GW_B + "/24")
        self.ini.add_address("eth1", self.INI_B + "/24")
        self.ini.ip("route", "add", "default", "via", self.GW_B, "metric", "200")
        self.b_connected = True


# --------------------------------------------------------------------------- multihomed responder


@dataclass
class MultihomedResponderTopology(NatTopology):
    """The NAT topology's ini and nat, and a responder on two routed segments behind the
    router wan (module docstring)."""
    wan: Namespace

    RES_ETH1_PRIMARY = "198.51.100.19"  # eth1's primary: its route source once eth0 is down
    WAN_NAT, WAN_ETH0, WAN_ETH1 = "198.51.100.1", "198.51.100.9", "198.51.100.17"


def multihomed_responder_topology(lab: Lab) -> MultihomedResponderTopology:
    """Builds the multihomed responder's network; at first the responder reaches the
    NAT from its RES_ADDR on eth0 (checked)."""
    ini, nat, wan, res = (lab.namespace(r) for r in ("ini", "nat", "wan", "res"))
    t = MultihomedResponderTopology(ini, nat, res, wan)
    lab.veth(t.ini, "eth0", t.nat, "in0")
    lab.veth(t.nat, "out0", t.wan, "pn")
    lab.veth(t.res, "eth0", t.wan, "p0")
    lab.veth(t.res, "eth1", t.wan, "p1")
    t.ini.add_address("eth0", t.INI_ADDR + "/24")
    t.ini.add_address("lo", t.INI_INNER + "/32")
    t.ini.add_route("default", via=t.NAT_INSIDE)
    t.nat.add_address("in0", t.NAT_INSIDE + "/24")
    t.nat.add_address("out0", t.NAT_OUTSIDE + "/29")
    t.nat.add_route("default", via=t.WAN_NAT)
    setup_nat(t.nat, "10.1.0.0/24", "out0", "in0")
    t.wan.sysctl("net.ipv4.ip_forward", 1)
    for dev in ("all", "default"):
        t.wan.sysctl(f"net.ipv4.conf.{dev}.rp_filter", 0)
    t.wan.add_address("pn", t.WAN_NAT + "/29")
    t.wan.add_address("p0", t.WAN_ETH0 + "/29")
    t.wan.add_address("p1", t.WAN_ETH1 + "/29")
    t.res.add_address("eth0", t.RES_ADDR + "/29")
    # eth1's primary address, so the route's source address once eth0 is down.
    t.res.add_address("eth1", t.RES_ETH1_PRIMARY + "/29")
    t.res.add_address("eth1", t.RES_ADDR2 + "/29")
    t.res.add_address("lo", t.RES_INNER + "/32")
    # A multihomed host: either uplink may carry any of its addresses (loose).
    for dev in ("all", "default", "eth0", "eth1"):
        t.res.sysctl(f"net.ipv4.conf.{dev}.rp_filter", 2)
    t.res.ip("route", "add", "default", "via", t.WAN_ETH0, "dev", "eth0", "metric", "100")
    t.res.ip("route", "add", "default", "via", t.WAN_ETH1, "dev", "eth1", "metric", "200")
    route = t.res.ip("route", "get", t.NAT_OUTSIDE).stdout
    check(f"src {t.RES_ADDR}" in route,
          f"the responder does not reach the NAT from {t.RES_ADDR} at first: {route}")
    return t
