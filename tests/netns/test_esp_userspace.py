#!/usr/bin/env python3
"""The userspace data plane between two mobiked through the NAT: ping and a bulk TCP
transfer (iperf3) through the tunnel, counted on both sides; tampered and replayed ESP
packets injected on the wire are dropped and counted; a Child SA rekey under a 10 ms
ping loses nothing.

    ini (10.1.0.2, inner 192.0.2.1) -- nat -- res (198.51.100.10, inner 203.0.113.1)
"""

import json
import re
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Lab, check, find_binary, log, require_commands, require_netns, run_test,  # noqa: E402
                   wait_until)
from topology import nat_topology  # noqa: E402


def ping(ns, t, count=5, interval="0.2", timeout=60):
    return ns.run(["ping", "-n", "-q", "-c", str(count), "-i", interval, "-W", "2", "-I", t.INI_INNER, t.RES_INNER],
                  check=False, timeout=timeout)


def loss(ping_output: str) -> float:
    m = re.search(r"([\d.]+)% packet loss", ping_output)
    return float(m.group(1)) if m else 100.0


def child(d: Mobiked, name: str) -> dict:
    sa = d.established(name)
    return [c for c in sa["children"] if c["state"] == "INSTALLED"][0]


INJECT = r'''
import socket, sys
dst, port, frames = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 4500))
for f in frames:
    s.sendto(bytes.fromhex(f), (dst, port))
'''


def test(lab: Lab) -> None:
    t = nat_topology(lab)
    # Idle cipher state goes after 1 to 2 s: released and rebuilt between the phases below.
    gw = Mobiked(lab, t.res, "gateway", dataplane="userspace",
                 daemon_extra='cipher_idle_release = "1s"\n').start([MConn(
        "clients", local_id="gw@mobike.test", remote_id=None, remote_addrs=["%any"],
        local_ts=[t.RES_INNER + "/32"], remote_ts=[t.INI_INNER + "/32"])])
    cl = Mobiked(lab, t.ini, "client", dataplane="userspace").start([MConn(
        "office", local_id="client@mobike.test", remote_id="gw@mobike.test", remote_addrs=[t.RES_ADDR],
        local_ts=[t.INI_INNER + "/32"], remote_ts=[t.RES_INNER + "/32"])])
    r = ping(t.ini, t, count=1)
    check(r.returncode != 0, "inner address reachable before the tunnel: topology is wrong")
    cl.ctl("initiate", "office")
    cl.established("office")
    gw.established("clients")

    r = ping(t.ini, t, count=5)
    check(r.returncode == 0, f"ping through the tunnel failed:\n{r.stdout}{r.stderr}\n{cl.stats()}")
    a, b = child(cl, "office"), child(gw, "clients")
    log(f"after ping: client out {a['packets_out']}p/{a['bytes_out']}B in {a['packets_in']}p, "
        f"gateway in {b['packets_in']}p out {b['packets_out']}p")
    for side, c in (("client", a), ("gateway", b)):
        check(c["packets_out"] >= 5 and c["packets_in"] >= 5, f"{side} counters miss the pings: {c}")
    check(a["bytes_out"] == b["bytes_in"] and a["packets_out"] == b["packets_in"],
          f"what the client sent is not what the gateway decrypted: {a} vs {b}")

    # Bulk TCP through the tunnel.
    server = t.res.spawn(["iperf3", "-s", "-1", "-B", t.RES_INNER], name="iperf3-server")
    time.sleep(0.5)
    r = t.ini.run(["iperf3", "-c", t.RES_INNER, "-B", t.INI_INNER, "-t", "3", "-J"], check=False, timeout=60)
    check(r.returncode == 0, f"iperf3 through the tunnel failed: {r.stdout[-2000:]}{r.stderr}")
    res = json.loads(r.stdout)
    mbps = res["end"]["sum_received"]["bits_per_second"] / 1e6
    moved = res["end"]["sum_received"]["bytes"]
    server.wait(10)
    a = child(cl, "office")
    log(f"iperf3: {mbps:.0f} Mbit/s, {moved} bytes; client Child SA out {a['bytes_out']} bytes")
    check(moved > 1_000_000 and a["bytes_out"] >= moved, f"bulk transfer too small or not counted: {moved}, {a}")

    # Tampered and replayed packets, injected from the NAT's public address to the
    # gateway's NAT-T port: capture real ESP first.
    cap = lab.dir / "esp.pcap"
    dump = t.res.spawn(["tcpdump", "-i", t.RES_DEV, "-n", "-U", "-w", str(cap), "-c", "5",
                        f"udp and dst host {t.RES_ADDR} and dst port 4500 and udp[8:4] != 0"], name="tcpdump")
    time.sleep(1)
    ping(t.ini, t, count=5, interval="0.05")
    dump.wait(10)
    frames = read_udp_payloads(cap)
    check(len(frames) >= 3, f"captured only {len(frames)} ESP packets")
    before = child(gw, "clients")
    # A fresh sequence number passes the replay check, so only the ICV can catch it.
    tampered = bytearray(frames[0])
    seq = int.from_bytes(tampered[4:8], "big") + 100000
    tampered[4:8] = seq.to_bytes(4, "big")
    payloads = [frames[1].hex(), frames[2].hex(), bytes(tampered).hex()]
    t.nat.run(["/usr/bin/python3", "-c", INJECT, t.RES_ADDR, "4500", *payloads], timeout=30)
    time.sleep(0.5)
    after = child(gw, "clients")
    drops = after.get("drops", {})
    log(f"gateway drops after injecting 2 replays and 1 tampered packet: {drops}")
    seqs = [(f[:4].hex(), int.from_bytes(f[4:8], "big")) for f in frames]
    check(drops.get("replay", 0) - before.get("drops", {}).get("replay", 0) == 2,
          f"replays not counted: {drops}; frames (spi, seq) {seqs}; gateway {gw.stats()['dataplane']}")
    check(drops.get("authentication", 0) - before.get("drops", {}).get("authentication", 0) == 1,
          f"tampered packet not counted: {drops}")
    check(after["packets_in"] == before["packets_in"], "an injected packet was delivered")

    # Child SA rekey under a 10 ms ping: zero lost.
    old_spi = child(cl, "office")["spi_in"]
    pinger = t.ini.spawn(["ping", "-n", "-i", "0.01", "-c", "400", "-I", t.INI_INNER, t.RES_INNER], name="ping-rekey")
    time.sleep(1)
    cl.ctl("rekey", "--child", str(child(cl, "office")["id"]))
    wait_until(lambda: child(cl, "office")["spi_in"] != old_spi, 10, "the Child SA rekey")
    time.sleep(0.5)
    gw.ctl("rekey", "--child", str(child(gw, "clients")["id"]))
    pinger.wait(30)
    out = pinger.log_text()
    check(loss(out) == 0.0, f"packets lost during the rekeys:\n{out[-500:]}")
    log(f"two Child SA rekeys under a 10 ms ping: {re.search(r'.*packet loss.*', out).group(0)}")

    # Idle: the gateway frees its cipher contexts (the rekeys' old Child SAs are gone,
    # the new ones idle), and the next packets key them again from the kept keys.
    wait_until(lambda: gw.stats()["dataplane"]["ciphers_keyed"] == 0, 10, "the idle ciphers' release")
    released = gw.stats()["dataplane"]["ciphers_released"]
    check(released >= 2, f"no cipher context released: {gw.stats()['dataplane']}")
    before = child(gw, "clients")
    r = ping(t.ini, t, count=3)
    check(r.returncode == 0 and loss(r.stdout) == 0.0, f"ping after the release failed:\n{r.stdout}{r.stderr}")
    after = child(gw, "clients")
    keyed = gw.stats()["dataplane"]["ciphers_keyed"]
    check(keyed == 2 and after["packets_in"] - before["packets_in"] == 3 and not after.get("drops"),
          f"the released Child SA did not carry the pings: keyed {keyed}, {before} -> {after}")
    log(f"idle cipher contexts released ({released} in all), keyed again by 3 pings")


def read_udp_payloads(path) -> list[bytes]:
    """UDP payloads of an Ethernet pcap (IPv4, no options assumed beyond IHL)."""
    data = path.read_bytes()
    out, off = [], 24
    while off + 16 <= len(data):
        incl = int.from_bytes(data[off + 8:off + 12], "little")
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = frame[14:]
        ihl = (ip[0] & 0x0f) * 4
        out.append(ip[ihl + 8:])
    return out


def requires():
    require_netns()
    require_commands("iptables", "ping", "iperf3", "tcpdump")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    run_test(test, "userspace ESP between two mobiked", requires=requires)