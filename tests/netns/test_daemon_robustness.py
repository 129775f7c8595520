#!/usr/bin/env python3
"""A running mobiked under bad input and signals:
- truncated, oversized and garbage datagrams on 500 and 4500 are dropped and counted,
  an IKE_SA_INIT with an unknown critical payload is answered with
  UNSUPPORTED_CRITICAL_PAYLOAD, and the daemon keeps serving (existing SA, new SAs);
- `mobikectl reload` with a broken file names file, line and key and keeps the old
  configuration; SIGHUP with a good file adds a connection;
- SIGTERM deletes the SAs politely: the peer learns of it at once.
"""

import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import (Lab, check, find_binary, log, require_commands, require_netns, run_test,  # noqa: E402
                   wait_until)
from topology import nat_topology  # noqa: E402

SENDER = r'''
import json, socket, sys
target, items = sys.argv[1], json.loads(sys.argv[2])
answers = []
for port, hexdata in items:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    s.sendto(bytes.fromhex(hexdata), (target, port))
    try:
        answers.append(s.recv(65535).hex())
    except socket.timeout:
        answers.append(None)
    s.close()
print(json.dumps(answers))
'''


def ike_header(spi_i, spi_r, exch, flags, mid, length, next_payload):
    return (spi_i.to_bytes(8, "big") + spi_r.to_bytes(8, "big") + bytes([next_payload, 0x20, exch, flags]) +
            mid.to_bytes(4, "big") + length.to_bytes(4, "big"))


def garbage():
    """(port, bytes) pairs: every one must be dropped (or answered with an error)."""
    items = []
    rnd = bytes((i * 73 + 11) % 256 for i in range(2000))
    for n in (1, 3, 27, 28, 29, 100, 1500):
        items.append((500, rnd[:n]))
    hdr = ike_header(0x1122334455667788, 0, 34, 0x08, 0, 28, 0)
    items.append((500, hdr[:20]))                                      # truncated header
    items.append((500, ike_header(1, 0, 34, 0x08, 0, 500, 33) + b"\0" * 10))   # length beyond datagram
    items.append((500, ike_header(1, 0, 34, 0x08, 0, 40, 33) + bytes([0, 0, 0, 2]) + b"\0" * 8))  # bad SA length
    items.append((500, bytes(40000)))                                  # oversized, all zeros
    items.append((4500, b"\0\0\0\0" + rnd[:50]))                       # marker + garbage
    items.append((4500, b"\0\0\0\0" + hdr[:10]))                       # marker + truncated
    items.append((4500, rnd[:3]))                                      # too short for anything
    items.append((4500, bytes([0xff])))                                # a NAT keepalive
    items.append((4500, rnd[:200]))                                    # ESP-looking garbage
    return items


def unknown_critical():
    # IKE_SA_INIT whose first payload is type 200 with the critical bit: the responder
    # must answer UNSUPPORTED_CRITICAL_PAYLOAD (RFC 7296 §2.5) carrying the type.
    body = bytes([0, 0x80, 0, 8]) + b"abcd"
    return ike_header(0x0102030405060708, 0, 34, 0x08, 0, 28 + len(body), 200) + body


def send(ns, target, items):
    payload = json.dumps([(p, d.hex()) for p, d in items])
    r = ns.run(["/usr/bin/python3", "-c", SENDER, target, payload], timeout=60)
    return json.loads(r.stdout)


def test(lab: Lab) -> None:
    t = nat_topology(lab)
    gw_conn = MConn("clients", local_id="gw@mobike.test", remote_id=None, remote_addrs=["%any"],
                    local_ts=[t.RES_INNER + "/32"], dpd_delay="2s")
    gw = Mobiked(lab, t.res, "gateway").start([gw_conn])
    cl_conn = MConn("office", local_id="client@mobike.test", remote_id="gw@mobike.test",
                    remote_addrs=[t.RES_ADDR], local_ts=[t.INI_INNER + "/32"],
                    remote_ts=[t.RES_INNER + "/32"], dpd_delay="2s")
    client = Mobiked(lab, t.ini, "client").start([cl_conn])
    client.ctl("initiate", "office")
    before = client.established("office")
    gw.established("clients")

    st0 = gw.stats()
    items = garbage()
    answers = send(t.ini, t.RES_ADDR, items)
    check(all(a is None for a in answers), f"garbage was answered: {answers}")
    [answer] = send(t.ini, t.RES_ADDR, [(500, unknown_critical())])
    check(answer is not None, "no answer to an IKE_SA_INIT with an unknown critical payload")
    resp = bytes.fromhex(answer)
    # Header (28) + Notify: next 0, flags, length 9, proto 0, spi size 0, type 1, data 200
    check(resp[16] == 41 and resp[18] == 34 and resp[19] & 0x20, f"not an IKE_SA_INIT response with a notify: {answer}")
    check(resp[28 + 6:28 + 8] == (1).to_bytes(2, "big") and resp[28 + 8] == 200,
          f"not UNSUPPORTED_CRITICAL_PAYLOAD(200): {answer}")
    wait_until(lambda: gw.proc.alive(), 1, "gateway alive")
    st1 = gw.stats()
    # ESP-looking datagrams on 4500 are the data plane's to drop (dataplane = "none").
    dropped = (sum(st1["dropped"].values()) + st1["dataplane"]["esp_dropped"]
               - sum(st0["dropped"].values()) - st0["dataplane"]["esp_dropped"])
    log(f"gateway counters after {len(items) + 1} bad datagrams: {st1['dropped']}, keepalives {st1['keepalives_in']}")
    check(st1["keepalives_in"] - st0["keepalives_in"] >= 1, "the keepalive was not recognised")
    check(dropped >= len(items) - 1, f"only {dropped} of {len(items) - 1} bad datagrams counted as dropped")

    # Still serving: the SA lives on (DPD every 2 s), and new SAs come up.
    time.sleep(3)
    after = client.established("office")
    check(after["spi_i"] == before["spi_i"], "the IKE SA was replaced by the garbage")
    client.ctl("terminate", "office")
    wait_until(lambda: gw.sa("clients") is None, 10, "gateway to drop the deleted SA")
    client.ctl("initiate", "office")
    client.established("office")
    gw.established("clients")
    log("still serving after garbage: SA kept, new SA established")

    # A broken file is refused with file:line:key, the running configuration stays.
    good = client.config_path.read_text()
    client.config_path.write_text(good + '\n[[connection]]\nname = "broken"\nlocal_id = "x"\npsk = "y"\nike_proposals = "aes129"\n')
    r = client.ctl("reload", check=False)
    check(r.returncode != 0, "reload of a broken file succeeded")
    msg = r.stderr + r.stdout
    check(str(client.config_path.name) in msg and "ike_proposals" in msg and ":" in msg,
          f"reload error does not name file, line and key: {msg!r}")
    log(f"broken reload refused: {msg.strip()}")
    check(client.sa("office") is not None, "the SA vanished after a refused reload")

    # SIGHUP with a good file adds a connection.
    second = MConn("second", local_id="client@mobike.test", remote_id="gw@mobike.test",
                   remote_addrs=[t.RES_ADDR], local_ts=[t.INI_INNER + "/32"],
                   remote_ts=[t.RES_INNER + "/32"])
    client.write_config([cl_conn, second])
    os.kill(client.proc.pid, signal.SIGHUP)
    wait_until(lambda: client.ctl("initiate", "second", check=False).returncode == 0, 5,
               "the reloaded connection 'second' to be known")
    client.established("second")
    log("SIGHUP reload added connection 'second'")

    # SIGTERM: DELETEs go out before the daemon exits.
    check(gw.sa("clients") is not None, "gateway has no SA before SIGTERM")
    t0 = time.monotonic()
    os.kill(client.proc.pid, signal.SIGTERM)
    rc = client.proc.wait(10)
    check(rc == 0, f"mobiked exited with {rc} on SIGTERM")
    wait_until(lambda: gw.sa("clients") is None, 3, "the gateway to learn of the deletes")
    log(f"SIGTERM: exited 0, gateway dropped the SAs after {time.monotonic() - t0:.2f}s")


def requires():
    require_netns()
    require_commands("iptables")
    find_binary("mobiked")
    find_binary("mobikectl")


if __name__ == "__main__":
    run_test(test, "mobiked robustness: garbage, reload, signals", requires=requires)
