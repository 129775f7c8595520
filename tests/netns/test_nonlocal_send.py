#!/usr/bin/env python3
"""A datagram sent from an address the sender no longer owns (UdpSocket's
IP_TRANSPARENT path) leaves with that source and passes the NAT's existing mapping --
what a gateway needs to tell NATed clients, from its old address, that it moved.

    ini 10.1.0.2:4500 -- NAT 198.51.100.2 -- res 198.51.100.20:4500 (then deleted)
"""

import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from netns import Lab, UdpProbe, check, find_binary, log, require_commands, require_netns, run_test  # noqa: E402
from topology import nat_topology  # noqa: E402


def test(lab: Lab) -> None:
    t = nat_topology(lab)
    ini = UdpProbe(lab, t.ini, "0.0.0.0:4500")
    res = UdpProbe(lab, t.res, "0.0.0.0:4500", "[::]:4500")
    old = f"{t.RES_ADDR2}:4500"

    # The client opens the NAT mapping towards the gateway's (soon old) address.
    check(ini.send(f"{t.INI_ADDR}:4500", old, "hello").startswith("sent"), "ini send failed")
    got = res.recv()
    check(got is not None, "res received nothing from ini")
    check(got["local"] == old, f"res: datagram arrived on {got['local']}, expected {old}")
    nat_host, nat_port = got["remote"].rsplit(":", 1)
    check(nat_host == t.NAT_OUTSIDE, f"res sees {got['remote']}, expected the NAT's address")
    mapping = got["remote"]
    log(f"NAT mapping {t.INI_ADDR}:4500 -> {mapping}")

    # While the address exists the pktinfo path is used.
    answer = res.send(old, mapping, "reply-while-owned")
    check(answer == "sent nonlocal=0", f"send from an owned address: {answer}")
    got = ini.recv()
    check(got is not None and got["data"] == "reply-while-owned", f"ini got {got}")
    check(got["remote"] == old, f"ini sees the reply from {got['remote']}, expected {old}")

    t.res.del_address(t.RES_DEV, t.RES_ADDR2 + "/24")
    check(t.RES_ADDR2 not in t.res.addresses(), f"{t.RES_ADDR2} still configured on res")

    # Now the source is not local: send() must fall back to the transparent socket.
    answer = res.send(old, mapping, "from-the-old-address")
    check(answer == "sent nonlocal=1",
          f"send from the deleted address did not take the non-local path: {answer}")
    got = ini.recv()
    check(got is not None, "the datagram from the deleted address did not reach ini "
          "(dropped at the sender or by the NAT)")
    check(got["data"] == "from-the-old-address", f"ini got {got}")
    check(got["remote"] == old, f"ini sees source {got['remote']}, expected {old}")
    check(got["local"] == f"{t.INI_ADDR}:4500", f"ini received on {got['local']}")

    # Control: the NAT filters by address and port, so the same send from a source with
    # no mapping is dropped. Without this, the success above would prove nothing about
    # the mapping.
    answer = res.send_nonlocal(f"{t.RES_ADDR2}:4501", mapping, "no-mapping")
    check(answer.startswith("sent"), f"send from an unmapped port: {answer}")
    got = ini.recv(timeout=1)
    check(got is None, f"the NAT forwarded a datagram from an unmapped port: {got}")

    # Nor is the right port from another address (address-dependent filtering).
    answer = res.send("198.51.100.30:4500", mapping, "never-owned")
    check(answer.startswith("sent nonlocal="), f"send from a never-owned address: {answer}")
    got = ini.recv(timeout=1)
    check(got is None, f"the NAT forwarded a datagram from an address with no mapping: {got}")

    # IPv6 (no NAT: Linux's IPv6 path refuses a foreign pktinfo source differently, and
    # IPV6_TRANSPARENT is a separate option): res -> nat on the outer link.
    t.nat.add_address(t.NAT_OUT_DEV, "2001:db8:2::1/64")
    # ::10 keeps the on-link prefix route alive once ::20 is deleted, as 198.51.100.10
    # does for IPv4.
    t.res.add_address(t.RES_DEV, "2001:db8:2::10/64")
    t.res.add_address(t.RES_DEV, "2001:db8:2::20/64")
    watcher = UdpProbe(lab, t.nat, "[::]:4500", name="udp_probe-nat6")
    answer = res.send("[2001:db8:2::20]:4500", "[2001:db8:2::1]:4500", "v6-owned")
    check(answer == "sent nonlocal=0", f"IPv6 send from an owned address: {answer}")
    got = watcher.recv()
    check(got is not None and got["remote"] == "[2001:db8:2::20]:4500", f"nat got {got}")
    t.res.del_address(t.RES_DEV, "2001:db8:2::20/64")
    answer = res.send("[2001:db8:2::20]:4500", "[2001:db8:2::1]:4500", "v6-old")
    check(answer == "sent nonlocal=1",  # counted per socket
          f"IPv6 send from the deleted address did not take the non-local path: {answer}")
    got = watcher.recv()
    check(got is not None and got["data"] == "v6-old", f"nat got {got}")
    check(got["remote"] == "[2001:db8:2::20]:4500", f"nat sees source {got['remote']}")


def requires():
    require_netns()
    require_commands("iptables")
    find_binary("udp_probe")


if __name__ == "__main__":
    run_test(test, "send from a deleted address through a NAT mapping", requires=requires)
