#!/usr/bin/env python3
"""The Prometheus metrics endpoint (`[daemon] metrics`), scraped over real sockets:

    client 198.51.100.2, .3 -- gateway 198.51.100.10, .20      (one veth, no NAT)

The client (metrics on 127.0.0.1:9560) establishes an IKE SA with the gateway (metrics on
[::1]:9560, IPv6), moves it to its second address (`mobikectl update-addresses`), then the
gateway switches it to 198.51.100.20 (`mobikectl switch`). Each endpoint is scraped with
Python's urllib from inside its namespace. Checks: the text parses as the exposition
format (HELP and TYPE before each family's samples, counters ending in _total,
histogram buckets cumulative up to le="+Inf" == _count); 1 IKE SA ESTABLISHED on both;
IKE_SA_INIT and IKE_AUTH counted as initiator on the client and responder on the gateway;
the client's move histogram holds exactly one succeeded move, the gateway's switch
histogram one succeeded switch and its moves_followed counter 2 (the move and the
switch's update); another path answers 404; `mobiked` stops promptly on SIGTERM with a
scrape's connection closed, and, started again without the key, listens on no TCP port.
"""

import json
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from mobiked import MConn, Mobiked  # noqa: E402
from netns import Failure, Lab, check, find_binary, log, require_netns, run_test, wait_until  # noqa: E402

CLIENT_A, CLIENT_B = "198.51.100.2", "198.51.100.3"
GW_A, GW_B = "198.51.100.10", "198.51.100.20"
CLIENT_METRICS, GW_METRICS = "127.0.0.1:9560", "[::1]:9560"

# Runs inside a namespace: GET one URL, print {"status", "body"} or {"error"}.
SCRAPE = r"""
import json, sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(json.dumps({"status": r.status, "type": r.headers.get("Content-Type"), "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
except (urllib.error.URLError, OSError) as e:
    print(json.dumps({"error": str(getattr(e, "reason", e))}))
"""

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def requires() -> None:
    require_netns()
    for b in ("mobiked", "mobikectl"):
        find_binary(b)


def get(ns, url: str) -> dict:
    r = ns.run(["python3", "-c", SCRAPE, url], timeout=30)
    return json.loads(r.stdout)


def parse(text: str) -> dict:
    """{(name, frozenset(labels)): value}, checking the exposition format on the way."""
    samples, types, helped = {}, {}, set()
    family = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            family = line.split(" ")[2]
            check(family not in helped, f"a second HELP for {family}")
            helped.add(family)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            check(name == family, f"TYPE {name} does not follow its HELP")
            check(kind in ("counter", "gauge", "histogram"), f"unknown type in {line!r}")
            check((kind == "counter") == name.endswith("_total"), f"{name} ({kind}): only counters end in _total")
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        check(m is not None, f"not a sample line: {line!r}")
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        base = re.sub(r"_(bucket|sum|count)$", "", name) if types.get(family) == "histogram" else name
        check(base == family, f"sample {name} outside its family {family}")
        samples[(name, frozenset(LABEL.findall(labels)))] = float(value)
    # Histograms: cumulative buckets, +Inf equal to _count.
    for name, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (n, labels), v in samples.items():
            if n == name + "_bucket":
                rest = frozenset(l for l in labels if l[0] != "le")
                le = dict(labels)["le"]
                series.setdefault(rest, []).append((float("inf") if le == "+Inf" else float(le), v))
        for rest, buckets in series.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            check(counts == sorted(counts), f"{name}{dict(rest)}: buckets not cumulative: {buckets}")
            check(buckets[-1][0] == float("inf"), f"{name}{dict(rest)}: no +Inf bucket")
            check(buckets[-1][1] == samples[(name + "_count", rest)], f"{name}{dict(rest)}: +Inf != _count")
    return samples


def value(samples: dict, name: str, **labels) -> float:
    key = (name, frozenset(labels.items()))
    if key not in samples:
        raise Failure(f"no sample {name}{labels}")
    return samples[key]


def scrape(ns, endpoint: str) -> dict:
    r = get(ns, f"http://{endpoint}/metrics")
    check(r.get("status") == 200, f"GET /metrics on {endpoint}: {r}")
    check(r.get("type", "").startswith("text/plain; version=0.0.4"), f"Content-Type: {r.get('type')}")
    return parse(r["body"])


def test(lab: Lab) -> None:
    cli, gw = lab.namespace("cli"), lab.namespace("gw")
    lab.veth(cli, "eth0", gw, "eth0")
    cli.add_address("eth0", CLIENT_A + "/24")
    cli.add_address("eth0", CLIENT_B + "/24")
    gw.add_address("eth0", GW_A + "/24")
    gw.add_address("eth0", GW_B + "/24")

    g = Mobiked(lab, gw, name="gateway", daemon_extra=f'metrics = "{GW_METRICS}"\n')
    g.start([MConn("metrics", local_id="gw@mobike.test", remote_id=None, remote_addrs=["%any"])])
    c = Mobiked(lab, cli, name="client", daemon_extra=f'metrics = "{CLIENT_METRICS}"\n')
    conn = MConn("metrics", local_id="client@mobike.test", remote_id="gw@mobike.test", remote_addrs=[GW_A],
                 local_addrs=[CLIENT_A, CLIENT_B], extra={"switch": True})
    c.start([conn])

    # Before any SA: the endpoints answer, with zeros.
    before = scrape(gw, GW_METRICS)
    check(value(before, "mobiked_ike_sas", state="ESTABLISHED") == 0, "an SA before any was made")

    c.ctl("initiate", "metrics")
    sa = c.established("metrics")
    g.established("metrics")
    log(f"established: {sa['local']} <-> {sa['remote']}")

    # A MOBIKE move by the client, then a switch by the gateway.
    c.ctl("update-addresses", "--sa", str(sa["id"]), "--local", CLIENT_B)
    wait_until(lambda: (s := c.sa("metrics")) and s["local"]["addr"] == CLIENT_B and s["state"] == "ESTABLISHED",
               10, "the client's SA on " + CLIENT_B)
    gsa = g.sa("metrics")
    wait_until(lambda: g.sa("metrics")["remote"]["addr"] == CLIENT_B, 10, "the gateway following to " + CLIENT_B)
    r = g.ctl("switch", "--sa", str(gsa["id"]), "--to", GW_B, "--json")
    check(json.loads(r.stdout)["switched"] == 1, f"switch: {r.stdout}")
    wait_until(lambda: c.sa("metrics")["remote"]["addr"] == GW_B, 10, "the client on " + GW_B)

    cm = scrape(cli, CLIENT_METRICS)
    gm = scrape(gw, GW_METRICS)
    for who, m in (("client", cm), ("gateway", gm)):
        check(value(m, "mobiked_ike_sas", state="ESTABLISHED") == 1, f"{who}: not 1 IKE SA ESTABLISHED")
        check(value(m, "mobiked_child_sas", state="INSTALLED") == 1, f"{who}: not 1 Child SA INSTALLED")
        check(value(m, "mobiked_ike_sa_events_total", event="established") == 1, f"{who}: established != 1")
        check(value(m, "mobiked_ike_datagrams_total", direction="in") > 0, f"{who}: no datagram in")
    for exchange in ("IKE_SA_INIT", "IKE_AUTH"):
        check(value(cm, "mobiked_exchanges_total", exchange=exchange, role="initiator") >= 1,
              f"client: no {exchange} initiated")
        check(value(gm, "mobiked_exchanges_total", exchange=exchange, role="responder") >= 1,
              f"gateway: no {exchange} answered")
    check(value(cm, "mobiked_exchanges_total", exchange="INFORMATIONAL", role="initiator") >= 1,
          "client: the update (INFORMATIONAL) not counted")
    check(value(gm, "mobiked_exchanges_total", exchange="INFORMATIONAL", role="initiator") >= 1,
          "gateway: the switch request (INFORMATIONAL) not counted")
    # The client asked for the move, and made the switch's update too: two succeeded.
    check(value(cm, "mobiked_move_duration_seconds_count", outcome="succeeded") == 2,
          "client: moves succeeded != 2 (update-addresses, and the switch's update)")
    check(value(cm, "mobiked_moves_total", outcome="succeeded") == 2, "client: mobiked_moves_total != 2")
    check(value(cm, "mobiked_move_duration_seconds_count", outcome="failed") == 0, "client: a failed move")
    check(value(gm, "mobiked_switch_duration_seconds_count", outcome="succeeded") == 1,
          "gateway: the switch histogram's count is not 1")
    check(value(gm, "mobiked_switches_total", outcome="succeeded") == 1, "gateway: switches != 1")
    # Between two veths the switch takes well under a millisecond (the histogram counts whole ms).
    check(0 <= value(gm, "mobiked_switch_duration_seconds_sum", outcome="succeeded") < 5,
          "gateway: the switch's duration is not within [0, 5) s")
    check(value(gm, "mobiked_switch_duration_seconds_bucket", outcome="succeeded", le="5") == 1,
          "gateway: the switch is not in the 5 s bucket")
    check(value(gm, "mobiked_switch_duration_seconds_bucket", outcome="succeeded", le="+Inf") == 1,
          "gateway: +Inf bucket != 1")
    check(value(gm, "mobiked_move_duration_seconds_count", outcome="succeeded") == 0,
          "gateway: moves it never asked for")
    check(value(gm, "mobiked_moves_followed_total") == 2, "gateway: followed moves != 2")
    check(value(cm, "mobiked_dataplane_packets_total", direction="in") == 0, "client: data-plane packets")
    check(not any(n.startswith("mobiked_cluster_") for n, _ in cm), "cluster metrics without [cluster]")
    log(f"client: move {value(cm, 'mobiked_move_duration_seconds_sum', outcome='succeeded'):.3f} s for 2 moves; "
        f"gateway: switch {value(gm, 'mobiked_switch_duration_seconds_sum', outcome='succeeded'):.3f} s")

    # Other paths: 404.
    for path in ("/", "/metrics/x", "/stats"):
        t0 = time.monotonic()
        r = get(gw, f"http://{GW_METRICS}{path}")
        log(f"GET {path}: {r.get('status')} in {time.monotonic() - t0:.2f} s")
        check(r.get("status") == 404, f"GET {path}: {r}")

    # SIGTERM: mobiked exits promptly and the port closes.
    t0 = time.monotonic()
    g.proc.popen.send_signal(signal.SIGTERM)
    rc = g.proc.popen.wait(10)
    log(f"gateway stopped in {time.monotonic() - t0:.2f} s (rc {rc})")
    check(rc == 0, f"the gateway exited with {rc}")
    r = get(gw, f"http://{GW_METRICS}/metrics")
    check("error" in r, f"the gateway's endpoint still answers after it stopped: {r}")

    # Without the key: nothing listens on TCP.
    g2 = Mobiked(lab, gw, name="gateway-plain")
    g2.start([MConn("metrics", local_id="gw@mobike.test", remote_id=None, remote_addrs=["%any"])])
    listening = gw.run(["ss", "-Htln"]).stdout.strip()
    check(listening == "", f"mobiked without metrics listens on TCP: {listening}")
    r = get(gw, f"http://{GW_METRICS}/metrics")
    check("error" in r, f"an endpoint answers without the key: {r}")
    g2.stop()
    c.stop()


if __name__ == "__main__":
    run_test(test, "metrics endpoint: scraped during a move and a switch", requires=requires, timeout=120)
