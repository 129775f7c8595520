#!/usr/bin/env python3
"""Writes the small reports in fixtures/ that test_plots.py renders: the shapes the
benches write (bench/mobike-move, responder-move, handshake with and without --sweep,
esp-throughput, failover), few runs, made-up figures. Run again after a bench's report
changes shape, and commit the result."""

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent / "fixtures"
rng = random.Random(14)


def trace(gap_start: float, gap_end: float | None, before: float = 1500, after: float = 1500) -> dict:
    """10 ms ping replies from -before to +after ms around the change, none in the gap
    (gap_end None: none after gap_start)."""
    t, x = [], -before
    while x <= after:
        if not (gap_start < x and (gap_end is None or x < gap_end)):
            t.append(round(x + rng.uniform(0, 0.4), 1))
        x += 9.9
    return {"t_ms": t, "rtt_ms": [round(rng.uniform(0.08, 0.3), 2) for _ in t]}


def move_run(sc, impl, gap, learn, where="host"):
    # impl: tests/netns/peers.py's MOBIKED / STRONGSWAN, "mobiked" and "strongSwan"
    start = rng.uniform(-9, 0) if sc == 2 else learn - gap + rng.uniform(0, 5)
    return {"scenario": sc, "impl": impl, "ok": True, "where": where,
            "metrics": {"establish_s": 0.21, "phase_s": 0.4, "peer_update_ms": learn + 20,
                        "learn_ms": learn, "gap_ms": gap, "lost": int(gap / 10), "replies": 290,
                        "stall_ms": gap, "resume_ms": start + gap, "resume_after_learn_ms": start + gap - learn},
            "problems": [], "notes": [], "trace": trace(start, start + gap), "lab_dir": None, "seconds": 14.2}


def mobike_move():
    runs = []
    for sc, (gm, gs, lm, ls) in {1: (409, 1283, 406, 1272), 2: (32, 115, 0, 0)}.items():
        for _ in range(2):
            runs.append(move_run(sc, "mobiked", gm + rng.uniform(-20, 20), lm))
            runs.append(move_run(sc, "strongSwan", gs + rng.uniform(-20, 20), ls))
    failed = {"scenario": 2, "impl": "strongSwan", "ok": False, "where": "host",
              "error": "the responder (strongswan) to see the initiator at 198.51.100.6: timed out",
              "lab_dir": "/tmp/mobike-lab-x", "seconds": 30.1}
    runs.append(failed)
    return {"bench": "mobike-move", "repeat": 2, "scenarios": [1, 2],
            "titles": {"1": "the initiator's NAT changes its public address",
                       "2": "the initiator moves from uplink A (NAT A) to uplink B (NAT B), old interface removed"},
            "load_average_before": [0.5, 0.4, 0.3], "load_average_after": [1.1, 0.6, 0.4],
            "versions": {"mobiked_commit": "aadff3c", "strongswan": "strongSwan 5.9.8"}, "runs": runs,
            "median": {"1": {"mobiked": {"gap_ms": 409}, "strongSwan": {"gap_ms": 1283}},
                       "2": {"mobiked": {"gap_ms": 32}, "strongSwan": {"gap_ms": 115}}}}


def switch_run(sc, impl, outcome, gap):
    m = {"gap_ms": gap, "lost": int(gap / 10), "replies": 300}
    if outcome == "moved":
        start = rng.uniform(-9, 0)
        m.update(stall_ms=gap, resume_ms=start + gap, moved_ms=start + gap - 5, replies_after=150, move_gap_ms=gap)
        tr = trace(start, start + gap)
    else:
        m.update(stall_ms=9000.0, resume_ms=None, deleted_ms=6100.0, replies_after=0, never_resumed_ms=9000.0)
        tr = trace(-3, None)
    return {"scenario": sc, "impl": impl, "ok": True, "outcome": outcome, "metrics": m, "problems": [],
            "notes": [], "facts": {"phase_s": 0.8}, "trace": tr, "lab_dir": None, "seconds": 20.0}


def responder_move():
    runs = [switch_run(1, "mobiked", "moved", 14), switch_run(1, "mobiked", "moved", 18),
            switch_run(2, "mobiked", "moved", 21), switch_run(2, "strongswan", "deleted", 0),
            switch_run(2, "mobiked", "moved", 25), switch_run(2, "strongswan", "moved", 900)]
    return {"bench": "responder-move", "repeat": 2, "scenarios": [1, 2], "before_dpd": None,
            "titles": {"1": "operator switch while both addresses work",
                       "2": "the old address is deleted from the responder"},
            "load_average_before": [0.5, 0.4, 0.3], "load_average_after": [1.1, 0.6, 0.4],
            "versions": {"mobiked_commit": "aadff3c"}, "runs": runs,
            "median": {"1": {"mobiked": {"move_gap_ms": 16}}, "2": {"mobiked": {"move_gap_ms": 23}}}}


def hs_report(n, rate, bps, cpu):
    return {"established": n, "failed": 0, "failure_reasons": {}, "elapsed_s": n / rate, "sas_per_s": rate,
            "latency_ms": {"p50": 12.3, "p90": 15.0, "p99": 18.4, "max": 22.0}, "retransmits": 0,
            "datagrams": 4 * n, "send_errors": 0, "bench_cpu_s": n / rate * 0.8,
            "responder": {"rss_before": 9000000, "rss_after": 9000000 + bps * n, "bytes_per_sa": bps,
                          "cpu_s": cpu * n / 1e6, "cpu_us_per_sa": cpu},
            "auth": "psk", "vip": False, "exit_code": 0, "responder_view": {"ike_sas": n, "half_open": 0}}


PARAMS = {"count": 50, "concurrency": 64, "rate": 0, "timeout": 30, "settle": 1.0, "mobiked_log_level": "warn",
          "charon_log_level": -1, "charon_threads": 16, "charon_table_size": 16384, "charon_policies": True,
          "mobiked_prefix": "", "mobiked_dataplane": "none", "auth": "psk", "vips": False}
LOAD = {"before_mobiked": [0.5, 0.4, 0.3], "after_mobiked": [0.6, 0.4, 0.3],
        "before_charon": [0.6, 0.4, 0.3], "after_charon": [0.9, 0.5, 0.3]}


def handshake():
    return {"bench": "handshake", "params": PARAMS, "host": {"kernel": "6.1.0", "nproc": 2, "commit": "aadff3c"},
            "loadavg": LOAD, "mobiked": hs_report(50, 3605.0, 3756.0, 265.0),
            "charon": hs_report(50, 914.0, 22127.0, 1740.0)}


def handshake_sweep():
    sweep = []
    for n, (rm, rc, bm, bc, cm, cc) in {100: (3900, 1300, 5200, 22500, 250, 1100),
                                       500: (4300, 1200, 3900, 22100, 210, 1300),
                                       2000: (4970, 1430, 2470, 21820, 165, 1085)}.items():
        sweep.append({"count": n, "loadavg": LOAD, "mobiked": hs_report(n, rm, bm, cm),
                      "charon": hs_report(n, rc, bc, cc)})
    return {"bench": "handshake", "params": dict(PARAMS, count=None), "host": {"kernel": "6.1.0", "nproc": 2},
            "loadavg": {}, "sweep": sweep}


def esp_throughput():
    runs = {"nat": {"bare": [11882, 11997, 12105], "mobiked": [1295, 1382, 1407], "strongswan": [170, 232, 231]},
            "bridge": {"bare": [11561, 11985, 11654], "mobiked": [1412, 1393, 1390], "strongswan": [227, 235, 217]}}
    med = {t: {k: sorted(v)[1] for k, v in r.items()} for t, r in runs.items()}
    return {"bench": "esp-throughput", "seconds": 5, "repeat": 3, "runs_mbit_s": runs, "median_mbit_s": med,
            "ratio_mobiked_to_strongswan": {t: m["mobiked"] / m["strongswan"] for t, m in med.items()},
            "charon_log_levels": {"default": -1}, "load_average": [0.84, 1.2, 1.0]}


def failover():
    return {"bench": "failover", "lease_ttl": "3s",
            "time": {"mobiked": {"seconds": [3.1, 2.8, 3.4], "median": 3.1, "recovered": 3, "rounds": 3},
                     "strongswan": {"seconds": [3.6, None, 3.9], "median": 3.75, "recovered": 2, "rounds": 3},
                     "swan-dpd": {"seconds": [7.2, 6.9, 8.0], "median": 7.2, "recovered": 3, "rounds": 3}},
            "mass": {"sas": 1000, "claimed_s": 3.2, "synchronised_s": 4.0, "by_node": {"gw2": 498, "gw3": 502},
                     "lost_by_survivors": 0, "lost_per_1000": 0.0, "bench": {}}}


def main():
    HERE.mkdir(exist_ok=True)
    for name, fn in (("mobike-move", mobike_move), ("responder-move", responder_move), ("handshake", handshake),
                     ("handshake-sweep", handshake_sweep), ("esp-throughput", esp_throughput),
                     ("failover", failover)):
        (HERE / f"{name}.json").write_text(json.dumps(fn(), separators=(",", ":")) + "\n")
    # A move report whose runs carry no ping trace (as before the figures): an error
    # that names the field, no traceback.
    old = mobike_move()
    del old["runs"][0]["trace"]
    (HERE / "mobike-move-no-trace.json").write_text(json.dumps(old, separators=(",", ":")) + "\n")
    bad = handshake_sweep()
    del bad["sweep"][1]["charon"]["sas_per_s"]
    (HERE / "handshake-sweep-missing-rate.json").write_text(json.dumps(bad, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
