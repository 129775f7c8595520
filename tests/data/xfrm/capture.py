#!/usr/bin/env python3
"""Captures the XFRM netlink requests iproute2 sends, as golden messages for
tests/unit/platform/xfrm_golden_test.cc.

The golden bytes come from ip(8), not from our builder, so a test comparing the two
checks our struct layout and attribute encoding against an independent implementation.
Each request is captured with strace (the full iov hex dump of sendmsg) inside a
throw-away network namespace; nlmsg_seq and nlmsg_pid are zeroed because ip fills them
with a timestamp and the socket's port id. The kernel's answer is recorded too: on a
kernel without ESP the SA requests fail, but the bytes sent are what matters.

Run by hand as root (needs ip, strace; writes NAME.hex next to this file):
  tests/data/xfrm/capture.py
The tests read only the .hex files.
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def seq(first, count):
    return "0x" + "".join(f"{(first + i) & 0xff:02x}" for i in range(count))


# Key material (the unit test uses the same octets).
GCM128 = seq(0x00, 16) + "a0a1a2a3"  # key || salt
CHACHA = seq(0x80, 32) + "b0b1b2b3"
CBC128 = seq(0xc0, 16)
CBC192 = seq(0x30, 24)
CBC256 = seq(0x10, 32)
SHA256 = seq(0xd0, 32)
SHA384 = seq(0x50, 48)
SHA512 = seq(0x40, 64)

V4_TUN = "mode tunnel flag af-unspec"

CAPTURES = [
    # --- SAs (XFRM_MSG_NEWSA / UPDSA)
    ("sa_new_gcm128_out_encap_v4", "NEWSA",
     f"ip xfrm state add src 192.0.2.1 dst 198.51.100.10 proto esp spi 0xc0ffee01 reqid 7 "
     f"{V4_TUN} replay-window 32 aead rfc4106(gcm(aes)) {GCM128} 128 "
     f"encap espinudp 4500 31337 0.0.0.0"),
    ("sa_new_gcm128_in_encap_v4", "NEWSA",
     f"ip xfrm state add src 198.51.100.10 dst 192.0.2.1 proto esp spi 0xc0ffee02 reqid 7 "
     f"{V4_TUN} replay-window 32 aead rfc4106(gcm(aes)) {GCM128} 128 "
     f"encap espinudp 31337 4500 0.0.0.0"),
    ("sa_new_cbc128_sha256_out_v4", "NEWSA",
     f"ip xfrm state add src 192.0.2.1 dst 198.51.100.10 proto esp spi 0x01020304 reqid 1 "
     f"{V4_TUN} replay-window 32 enc cbc(aes) {CBC128} auth-trunc hmac(sha256) {SHA256} 128"),
    ("sa_new_cbc256_sha512_in_v6_limits", "NEWSA",
     f"ip xfrm state add src 2001:db8::10 dst 2001:db8::1 proto esp spi 0x00001234 reqid 9 "
     f"{V4_TUN} replay-window 32 enc cbc(aes) {CBC256} auth-trunc hmac(sha512) {SHA512} 256 "
     f"limit byte-soft 900000 limit byte-hard 1000000 limit packet-soft 9000 "
     f"limit packet-hard 10000 limit time-soft 3000 limit time-hard 3600"),
    ("sa_new_cbc192_sha384_window128_v4", "NEWSA",
     f"ip xfrm state add src 192.0.2.1 dst 198.51.100.10 proto esp spi 0x0badcafe reqid 3 "
     f"{V4_TUN} replay-window 128 enc cbc(aes) {CBC192} auth-trunc hmac(sha384) {SHA384} 192"),
    ("sa_new_chacha_esn_v6", "NEWSA",
     f"ip xfrm state add src 2001:db8::1 dst 2001:db8::10 proto esp spi 0xfeedf00d reqid 4 "
     f"mode tunnel flag af-unspec flag esn replay-window 1024 "
     f"aead rfc7539esp(chacha20,poly1305) {CHACHA} 128"),
    ("sa_new_cbc128_sha256_counters_v4", "NEWSA",
     f"ip xfrm state add src 192.0.2.7 dst 198.51.100.10 proto esp spi 0x01020304 reqid 1 "
     f"{V4_TUN} replay-window 32 enc cbc(aes) {CBC128} auth-trunc hmac(sha256) {SHA256} 128 "
     f"replay-seq 0x55 replay-oseq 0x1234"),
    ("sa_upd_gcm128_out_encap_v4", "UPDSA",
     f"ip xfrm state update src 192.0.2.1 dst 198.51.100.10 proto esp spi 0xc0ffee01 reqid 7 "
     f"{V4_TUN} replay-window 32 aead rfc4106(gcm(aes)) {GCM128} 128 "
     f"encap espinudp 4500 40000 0.0.0.0"),
    # --- SA lookups and deletes (struct xfrm_usersa_id)
    ("sa_del_v4", "DELSA",
     "ip xfrm state delete src 192.0.2.1 dst 198.51.100.10 proto esp spi 0xc0ffee01"),
    ("sa_get_v6", "GETSA",
     "ip xfrm state get src 2001:db8::10 dst 2001:db8::1 proto esp spi 0x00001234"),
    # --- policies (XFRM_MSG_NEWPOLICY / UPDPOLICY / DELPOLICY)
    ("policy_new_out_v4", "NEWPOLICY",
     "ip xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir out priority 1871 "
     "tmpl src 192.0.2.1 dst 198.51.100.10 proto esp reqid 7 mode tunnel"),
    ("policy_new_in_tcp_v4", "NEWPOLICY",
     "ip xfrm policy add src 10.2.0.0/16 dst 10.1.2.3/32 proto tcp sport 443 dir in "
     "priority 1800 tmpl src 198.51.100.10 dst 192.0.2.1 proto esp reqid 7 mode tunnel"),
    ("policy_new_fwd_v6_over_v4", "NEWPOLICY",
     "ip xfrm policy add src 2001:db8:2::/48 dst 2001:db8:1::/48 dir fwd priority 1600 "
     "tmpl src 198.51.100.10 dst 192.0.2.1 proto esp reqid 11 mode tunnel"),
    ("policy_upd_out_v4", "UPDPOLICY",
     "ip xfrm policy update src 10.1.0.0/16 dst 10.2.0.0/16 dir out priority 1871 "
     "tmpl src 192.0.2.99 dst 198.51.100.20 proto esp reqid 7 mode tunnel"),
    ("policy_del_out_v4", "DELPOLICY",
     "ip xfrm policy delete src 10.1.0.0/16 dst 10.2.0.0/16 dir out"),
    ("policy_del_in_tcp_v4", "DELPOLICY",
     "ip xfrm policy delete src 10.2.0.0/16 dst 10.1.2.3/32 proto tcp sport 443 dir in"),
]

MSG_TYPES = {"NEWSA": 0x10, "DELSA": 0x11, "GETSA": 0x12, "NEWPOLICY": 0x13,
             "DELPOLICY": 0x14, "UPDPOLICY": 0x19, "UPDSA": 0x1a}


def first_request(trace, want_type):
    """The first sendmsg iov dump whose nlmsg_type is want_type, as bytes."""
    blocks, current = [], None
    for line in trace.splitlines():
        if re.match(r"^(\d+\s+)?sendmsg\(", line):
            current = bytearray()
            blocks.append(current)
        m = re.match(r"^(?:\d+\s+)? \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2})+)", line)
        if m and current is not None:
            current.extend(bytes.fromhex(m.group(1).replace(" ", "")))
    for b in blocks:
        if len(b) >= 16 and int.from_bytes(b[4:6], "little") == want_type:
            return bytes(b)
    raise SystemExit(f"no sendmsg of type {want_type:#x} in trace:\n{trace}")


def kernel_answer(trace, stderr):
    m = re.search(r"error=(-?[A-Z0-9]+|0)", trace)
    errno_text = m.group(1) if m else "(no NLMSG_ERROR)"
    text = stderr.strip().replace("\n", " ")
    return f"{errno_text}{(' ' + repr(text)) if text else ''}"


def main():
    if os.geteuid() != 0:
        raise SystemExit("run as root (creates a network namespace)")
    ns = f"hx-xfrm-capture-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    kernel = os.uname().release
    iproute = subprocess.run(["ip", "-V"], capture_output=True, text=True).stdout.strip()
    try:
        for name, kind, command in CAPTURES:
            with tempfile.NamedTemporaryFile("r", suffix=".strace") as tf:
                argv = ["ip", "netns", "exec", ns, "strace", "-o", tf.name, "-xx",
                        "-e", "trace=sendmsg,recvmsg", "-e", "write=all",
                        *shlex.split(command)]
                r = subprocess.run(argv, capture_output=True, text=True)
                trace = open(tf.name).read()
            msg = bytearray(first_request(trace, MSG_TYPES[kind]))
            msg[8:16] = bytes(8)  # nlmsg_seq, nlmsg_pid
            length = int.from_bytes(msg[0:4], "little")
            assert length == len(msg), f"{name}: nlmsg_len {length} != {len(msg)}"
            lines = [
                f"# XFRM_MSG_{kind} as sent by {iproute}; nlmsg_seq and nlmsg_pid zeroed.",
                f"# command: {command}",
                f"# kernel {kernel} answered: {kernel_answer(trace, r.stderr)}",
            ]
            for off in range(0, len(msg), 16):
                lines.append(" ".join(f"{b:02x}" for b in msg[off:off + 16]))
            with open(os.path.join(HERE, name + ".hex"), "w") as f:
                f.write("\n".join(lines) + "\n")
            print(f"{name}: {len(msg)} bytes, kernel: {kernel_answer(trace, r.stderr)}")
    finally:
        subprocess.run(["ip", "netns", "del", ns])


if __name__ == "__main__":
    sys.exit(main())
