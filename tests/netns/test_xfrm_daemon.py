#!/usr/bin/env python3
"""dataplane = "xfrm": two mobiked through the NAT, the kernel doing ESP.

netns-uml: yes

    ini (10.1.0.2, inner 192.0.2.1) -- nat -- res (198.51.100.10, inner 203.0.113.1)

IPsec policies must not catch IKE itself. Before the daemons start, each namespace
gets policies of its own (reqid 9999, no SA can ever match) that demand ESP for all
traffic between the two IKE endpoints. A ping between them is then dropped, and a pair of
mobiked with dataplane = "none" (IKE sockets without the per-socket bypass) cannot even
get IKE_SA_INIT across; the xfrm pair must establish, rekey its Child SA and keep DPD
answered through the same policies. Its IKE sockets carry the per-socket policies
(`ip xfrm policy` lists them), and a fake ESP-in-UDP packet to its NAT-T port is taken
by the kernel (UDP_ENCAP) where the "none" pair's daemon receives it.

With ESP in the kernel: the Child SA's out/in/fwd policies and both SAs are in
`ip xfrm policy/state`, a ping between the inner addresses goes through the tunnel and
shows up in the kernel's SA counters and in list-sas, and a stopped daemon leaves no
policy behind.

Without ESP (CONFIG_INET_ESP off, as on the machine this was written on) the kernel
refuses the first SA with EPROTONOSUPPORT (or ENOSYS for a missing crypto template); the
test checks that mobiked reports exactly that in `mobikectl stats --json`, stays up, and
left no half-installed Child SA in the kernel (XfrmChildSas installs policies only after
both SAs), then exits 77 with the kernel's answer, after the IKE checks above passed.
"""

import re
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Lab, Skip, check, find_binary, log, no_kernel_esp, require_commands,  # noqa: E402
                   require_netns, run_test, wait_until)
from topology import nat_topology  # noqa: E402

GUARD_REQID = "9999"  # the test's own IKE-path policies; the daemons allocate from 1
NO_ESP = ("EPROTONOSUPPORT", "ENOSYS")


def _oneline(ns, *args: str) -> list[str]:
    out = ns.ip("-o", *args).stdout
    return [re.sub(r"\s+", " ", line.replace("\\", " ")).strip() for line in out.splitlines() if line.strip()]


def policies(ns) -> list[dict]:
    """The SPD's policies; per-socket ones are socket_policies()."""
    rx = re.compile(r"src (\S+) dst (\S+) .*?dir (\w+) .*?tmpl src (\S+) dst (\S+) proto esp reqid (\d+)")
    out = []
    for line in _oneline(ns, "xfrm", "policy"):
        if " socket " in line:
            continue
        m = rx.search(line)
        check(m is not None, f"unexpected `ip xfrm policy` line: {line}")
        out.append(dict(zip(("src", "dst", "dir", "tsrc", "tdst", "reqid"), m.groups())))
    return out


def socket_policies(ns) -> list[str]:
    """Directions of the per-socket policies (xfrm_bypass_socket), as ip(8) lists them."""
    return sorted(m.group(1) for line in _oneline(ns, "xfrm", "policy")
                  if (m := re.search(r" socket (in|out) ", line)))


def states(ns) -> list[dict]:
    """The kernel's SAs (larval acquire placeholders left out)."""
    out = []
    for line in _oneline(ns, "-s", "xfrm", "state"):
        # With -s, ip(8) adds the decimal SPI and the hex reqid: "spi 0x..(N) reqid N(0x..)".
        m = re.search(r"src (\S+) dst (\S+) proto esp spi (0x[0-9a-f]+)(?:\(\d+\))? reqid (\d+)", line)
        check(m is not None, f"unexpected `ip xfrm state` line: {line}")
        if int(m.group(3), 16) == 0:
            # The kernel's placeholder for an acquire (a packet met a policy without an
            # SA while mobiked listens for ACQUIRE, as for start = "trap"): not an SA.
            continue
        cur = re.search(r"lifetime current: (\d+)\(bytes\), (\d+)\(packets\)", line)
        encap = re.search(r"encap type espinudp sport (\d+) dport (\d+)", line)
        out.append({"src": m.group(1), "dst": m.group(2), "spi": int(m.group(3), 16),
                    "bytes": int(cur.group(1)) if cur else None,
                    "packets": int(cur.group(2)) if cur else None,
                    "encap": (int(encap.group(1)), int(encap.group(2))) if encap else None})
    return out


def guard_ike_path(ns, local: str, peer: str) -> None:
    """Everything between the two IKE endpoints must be ESP with an SA that never exists."""
    for d, (s, t) in (("out", (local, peer)), ("in", (peer, local))):
        ns.ip("xfrm", "policy", "add", "src", f"{s}/32", "dst", f"{t}/32", "dir", d,
              "tmpl", "src", s, "dst", t, "proto", "esp", "reqid", GUARD_REQID, "mode", "tunnel")


def reachable(ns, dst: str, src: str | None = None) -> bool:
    argv = ["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1"] + (["-I", src] if src else []) + [dst]
    return ns.run(argv, check=False, timeout=30).returncode == 0


INJECT = r'''
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(bytes.fromhex(sys.argv[3]), (sys.argv[1], int(sys.argv[2])))
'''


FAKE_ESP = "deadbeef00000001" + "00" * 32  # SPI 0xdeadbeef, sequence 1, no SA anywhere


def inject_esp(t) -> None:
    """A UDP-encapsulated ESP packet from the NAT to the gateway's NAT-T port, on its
    second address: the guard policies cover only the first, so that the kernel's ICMP
    answer (below) is not held back by them."""
    t.nat.run(["/usr/bin/python3", "-c", INJECT, t.RES_ADDR2, "4500", FAKE_ESP], timeout=30)


def kernel_rx_counters(ns) -> tuple[int, int]:
    """XfrmInNoStates (ESP input found no SA) and ICMP destination-unreachable sent (what
    the kernel does with ESP-in-UDP when it has no ESP input handler at all)."""
    xs = re.search(r"^XfrmInNoStates\s+(\d+)", ns.run(["cat", "/proc/net/xfrm_stat"]).stdout, re.M)
    snmp = ns.run(["cat", "/proc/net/snmp"]).stdout.splitlines()
    icmp = [line.split()[1:] for line in snmp if line.startswith("Icmp:")]
    check(xs is not None and len(icmp) == 2, "cannot read /proc/net/xfrm_stat and /proc/net/snmp")
    return int(xs.group(1)), int(dict(zip(icmp[0], icmp[1]))["OutDestUnreachs"])


def check_kernel_takes_udp_esp(t, gw: Mobiked) -> None:
    """UDP_ENCAP on the NAT-T socket: ESP arriving there is the kernel's, never the daemon's."""
    before = kernel_rx_counters(t.res)
    inject_esp(t)
    wait_until(lambda: any(a > b for a, b in zip(kernel_rx_counters(t.res), before)), 5,
               "the kernel to take the ESP-in-UDP packet (XfrmInNoStates or ICMP unreachable)")
    check(gw.stats()["dataplane"]["esp_udp_dropped"] == 0,
          f"ESP-in-UDP reached the daemon despite UDP_ENCAP: {gw.stats()['dataplane']}")
    log(f"ESP-in-UDP on the NAT-T port is taken by the kernel (XfrmInNoStates, ICMP unreachable "
        f"{before} -> {kernel_rx_counters(t.res)}), not by mobiked")


def installed_child(d: Mobiked, name: str) -> dict:
    sa = d.established(name)
    return [c for c in sa["children"] if c["state"] == "INSTALLED"][0]


def conns(t, dpd: str = "30s") -> tuple[MConn, MConn]:
    gw = MConn("clients", local_id="gw@mobike.test", remote_id=None, remote_addrs=["%any"],
               local_ts=[t.RES_INNER + "/32"], remote_ts=[t.INI_INNER + "/32"])
    cl = MConn("office", local_id="client@mobike.test", remote_id="gw@mobike.test",
               remote_addrs=[t.RES_ADDR], local_ts=[t.INI_INNER + "/32"],
               remote_ts=[t.RES_INNER + "/32"], dpd_delay=dpd)
    return gw, cl


def control_without_socket_options(lab: Lab, t) -> None:
    """Daemons whose sockets have neither the bypass nor UDP_ENCAP (dataplane = "none"):
    IKE never reaches the gateway, and ESP-in-UDP reaches mobiked."""
    gw_conn, cl_conn = conns(t)
    gw = Mobiked(lab, t.res, "gateway-none", dataplane="none", retransmit_timeout=0.5,
                 retransmit_tries=1).start([gw_conn])
    cl = Mobiked(lab, t.ini, "client-none", dataplane="none", retransmit_timeout=0.5,
                 retransmit_tries=1).start([cl_conn])
    cl.ctl("initiate", "office")
    time.sleep(3)
    sa = cl.sa("office")
    check(sa is None or sa["state"] != "ESTABLISHED", f"IKE got through the guard policies unexempted: {sa}")
    check(gw.stats()["datagrams"]["in"] == 0,
          f"the guard policies let IKE through to the gateway: {gw.stats()['datagrams']}")
    # Without UDP_ENCAP the same fake ESP packet as in check_kernel_takes_udp_esp reaches
    # the daemon: that check's "never reached mobiked" is not a lost packet.
    inject_esp(t)
    wait_until(lambda: gw.stats()["dataplane"]["esp_dropped"] == 1, 5, "the fake ESP packet at gateway-none")
    cl.stop()
    gw.stop()
    log("control: without the socket options the guard policies stop IKE_SA_INIT and ESP-in-UDP reaches mobiked")


def check_rekey_and_dpd(cl: Mobiked, gw: Mobiked) -> None:
    ike_id = cl.sa("office")["id"]
    before_cl, before_gw = installed_child(cl, "office"), installed_child(gw, "clients")
    dp = cl.stats()["dataplane"]
    attempts_before = dp["installs"] + dp["install_errors"]
    cl.ctl("rekey", "--child", str(before_cl["id"]))
    wait_until(lambda: installed_child(cl, "office")["spi_in"] != before_cl["spi_in"]
               and installed_child(gw, "clients")["spi_out"] != before_gw["spi_out"], 15,
               "the Child SA rekey on both sides")
    after_cl = installed_child(cl, "office")
    check(after_cl["spi_in"] == installed_child(gw, "clients")["spi_out"],
          f"the two sides disagree on the rekeyed Child SA: {after_cl} vs {installed_child(gw, 'clients')}")
    # Only one Child SA left on each side: the old one was deleted over IKE as well.
    wait_until(lambda: len(cl.sa("office")["children"]) == 1 and len(gw.sa("clients")["children"]) == 1, 10,
               "the rekeyed Child SA's predecessor to be deleted")
    dp = cl.stats()["dataplane"]
    check(dp["installs"] + dp["install_errors"] == attempts_before + 1,
          f"the rekeyed Child SA did not reach the data plane once: {dp}")
    log(f"Child SA rekeyed through the policies: spi_in {before_cl['spi_in']} -> {after_cl['spi_in']}")

    # DPD: the client sends a liveness check after 2 s without traffic from the gateway.
    s_gw, s_cl = gw.stats(), cl.stats()
    time.sleep(7)
    n_gw, n_cl = gw.stats(), cl.stats()
    got = n_gw["datagrams"]["in"] - s_gw["datagrams"]["in"]
    answered = n_cl["datagrams"]["in"] - s_cl["datagrams"]["in"]
    check(got >= 2 and answered >= 2, f"DPD exchanges in 7 s: gateway got {got}, client got {answered} answers")
    check(n_cl["retransmits"]["sent"] == s_cl["retransmits"]["sent"],
          f"DPD requests needed retransmitting: {s_cl['retransmits']} -> {n_cl['retransmits']}")
    sa = cl.sa("office")
    check(sa is not None and sa["id"] == ike_id and sa["state"] == "ESTABLISHED", f"IKE SA after DPD: {sa}")
    log(f"DPD through the policies: {got} requests answered, no retransmissions")


def test(lab: Lab) -> None:
    t = nat_topology(lab)
    check(reachable(t.ini, t.RES_ADDR), "the gateway is unreachable before any policy: topology is wrong")
    guard_ike_path(t.ini, t.INI_ADDR, t.RES_ADDR)
    guard_ike_path(t.res, t.RES_ADDR, t.NAT_OUTSIDE)
    check(not reachable(t.ini, t.RES_ADDR), "the guard policies do not catch traffic between the IKE endpoints")
    control_without_socket_options(lab, t)

    gw_conn, cl_conn = conns(t, dpd="2s")
    gw = Mobiked(lab, t.res, "gateway", dataplane="xfrm").start([gw_conn])
    cl = Mobiked(lab, t.ini, "client", dataplane="xfrm").start([cl_conn])
    cl.ctl("initiate", "office")
    cl.established("office")
    gw.established("clients")
    log("IKE SA and Child SA established through the guard policies")

    # listen = ["0.0.0.0", "::"] (tests/netns/mobiked.py): an IKE and a NAT-T socket per
    # family, each exempt in and out.
    for ns in (t.ini, t.res):
        check(socket_policies(ns) == ["in"] * 4 + ["out"] * 4,
              f"per-socket bypass policies in {ns}: {socket_policies(ns)}")

    check_kernel_takes_udp_esp(t, gw)

    dp_cl, dp_gw = cl.stats()["dataplane"], gw.stats()["dataplane"]
    check(dp_cl["backend"] == "xfrm" and dp_gw["backend"] == "xfrm", f"backends: {dp_cl} {dp_gw}")
    refused = [dp for dp in (dp_cl, dp_gw) if dp["install_errors"]]
    if refused:
        # Every refusal must be the missing-ESP one; anything else is a bug of ours.
        for dp in (dp_cl, dp_gw):
            check(dp["installs"] == 0 and dp["install_errors"] >= 1 and dp["last_error"]
                  and dp["last_error"]["name"] in NO_ESP,
                  f"SA install failed for another reason than missing ESP: {dp}")
        for ns in (t.ini, t.res):
            check(states(ns) == [], f"SAs in the kernel after a refusal: {states(ns)}")
            left = [p for p in policies(ns) if p["reqid"] != GUARD_REQID]
            check(left == [], f"a refused Child SA left policies behind: {left}")
            check(len(policies(ns)) == 2, f"the guard policies went missing: {policies(ns)}")
        check_rekey_and_dpd(cl, gw)
        for d in (cl, gw):
            check(d.proc.alive(), f"{d.name} exited after the kernel refused its SAs")
        no_kernel_esp("IKE through XFRM policies passed (socket bypass: establish, Child SA rekey, DPD); "
                   "the ESP data path cannot be tested, the kernel refused the SA: "
                   f"{dp_cl['last_error']['name']}: {dp_cl['last_error']['message']}")

    check(dp_cl["installs"] == 1 and dp_gw["installs"] == 1 and dp_cl["errors"] == 0 and dp_gw["errors"] == 0,
          f"data plane stats after establishment: {dp_cl} {dp_gw}")
    a, b = installed_child(cl, "office"), installed_child(gw, "clients")
    for ns, ch, out_src, out_dst in ((t.ini, a, t.INI_INNER, t.RES_INNER), (t.res, b, t.RES_INNER, t.INI_INNER)):
        mine = {(p["src"], p["dst"], p["dir"]) for p in policies(ns) if p["reqid"] != GUARD_REQID}
        check(mine == {(out_src + "/32", out_dst + "/32", "out"), (out_dst + "/32", out_src + "/32", "in"),
                       (out_dst + "/32", out_src + "/32", "fwd")}, f"Child SA policies in {ns}: {policies(ns)}")
        spis = {s["spi"] for s in states(ns)}
        check(spis == {int(ch["spi_in"], 16), int(ch["spi_out"], 16)}, f"SAs in {ns}: {states(ns)} vs {ch}")
        check(all(s["encap"] is not None for s in states(ns)),
              f"SAs without UDP encapsulation behind a NAT: {states(ns)}")
    check_rekey_and_dpd(cl, gw)

    # The backend installs no routes (strongSwan would, in table 220): the gateway needs
    # one towards the client's inner address for the reply to reach the out policy.
    t.res.ip("route", "add", t.INI_INNER + "/32", "via", t.NAT_OUTSIDE, "src", t.RES_INNER)
    r = t.ini.run(["ping", "-n", "-q", "-c", "5", "-i", "0.2", "-W", "2", "-I", t.INI_INNER, t.RES_INNER],
                  check=False, timeout=60)
    check(r.returncode == 0, f"ping through the kernel's tunnel failed:\n{r.stdout}{r.stderr}\n"
          f"{states(t.ini)}\n{cl.stats()['dataplane']}")
    a = installed_child(cl, "office")
    out_sa = [s for s in states(t.ini) if s["spi"] == int(a["spi_out"], 16)]
    in_sa = [s for s in states(t.ini) if s["spi"] == int(a["spi_in"], 16)]
    check(out_sa and in_sa and out_sa[0]["packets"] >= 5 and in_sa[0]["packets"] >= 5,
          f"kernel SA counters miss the pings: {states(t.ini)}")
    check(a["packets_out"] == out_sa[0]["packets"] and a["packets_in"] == in_sa[0]["packets"],
          f"list-sas does not show the kernel's counters: {a} vs {out_sa} {in_sa}")
    log(f"ping through the tunnel: client SA out {out_sa[0]['packets']}p/{out_sa[0]['bytes']}B, "
        f"in {in_sa[0]['packets']}p")

    cl.stop()
    left = [p for p in policies(t.ini) if p["reqid"] != GUARD_REQID]
    check(left == [] and states(t.ini) == [], f"a stopped mobiked left kernel state: {left} {states(t.ini)}")


def requires():
    require_netns()
    require_commands("iptables", "ping")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    run_test(test, "xfrm data plane between two mobiked", requires=requires)
