#!/usr/bin/env python3
"""Extracts the IKE messages of a pcap (Ethernet/IPv4/UDP, ports 500 and 4500) as
binary files, one per datagram, with the RFC 3948 non-ESP marker stripped.

Run once by hand; the tests read only the extracted files, never the pcap:
  extract_pcap.py CORPUS_DIR/exchanges.pcap OUTDIR
"""
import os
import struct
import sys

EXCHANGES = {34: "ike_sa_init", 35: "ike_auth", 36: "create_child_sa", 37: "informational"}


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    assert linktype == 1, "only Ethernet captures are handled"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        yield data[off + 16:off + 16 + incl]
        off += 16 + incl


def ike_messages(path):
    for frame in packets(path):
        if struct.unpack(">H", frame[12:14])[0] != 0x0800:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17:
            continue
        udp = ip[ihl:]
        sport, dport, ulen = struct.unpack(">HHH", udp[:6])
        payload = udp[8:ulen]
        if 4500 in (sport, dport):
            if payload[:4] != b"\0\0\0\0":
                continue  # ESP in UDP
            payload = payload[4:]
        elif 500 not in (sport, dport):
            continue
        yield payload


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for i, msg in enumerate(ike_messages(src)):
        exch = EXCHANGES.get(msg[18], "x%d" % msg[18])
        role = "r" if msg[19] & 0x20 else "q"
        name = "%02d_%s_%s.bin" % (i, exch, "response" if role == "r" else "request")
        with open(os.path.join(out, name), "wb") as f:
            f.write(msg)
        print(name, len(msg))


if __name__ == "__main__":
    main()
