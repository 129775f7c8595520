"""mobike-bench handshake, small, against mobiked, through the very code of bench/handshake
(its topology, responder configuration and bench call), so that neither the bench binary
nor the script can rot unnoticed. Checks the JSON report, never a timing. One ctest per
case:

netns-params: psk ecdsa_vips
netns-serial: yes

    psk         50 IKE SAs (one Child SA each) with the PSK, the bench's defaults: every
                SA established, no failures, a positive rate, and a memory reading of the
                responder while its SAs are up (mobiked still holds all of them).
    ecdsa_vips  20 SAs as `bench/handshake --auth ecdsa --vips`: ECDSA P-256 certificates
                on both ends from a PKI made for the run, and every SA asks for a virtual
                IPv4 address from mobiked's pool. The same checks, and: the report says
                certificates and a virtual IP were used; every established SA got an
                address (vips_assigned), all different (vips_distinct), each Child SA's
                TSi narrowed by mobiked to exactly that address (vips_in_ts); mobiked's
                list-pools shows one online lease per SA. (The bench's connections
                require the responder's certificate: an SA mobiked authenticated by PSK
                would not count as established.)
"""

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from netns import check, log, netns_param, run_test  # noqa: E402

CASES = {"psk": {"count": 50}, "ecdsa_vips": {"count": 20, "auth": "ecdsa", "vips": True}}


def load_handshake_script():
    root = Path(os.environ.get("MOBIKE_SOURCE_DIR") or Path(__file__).resolve().parents[2])
    path = root / "bench" / "handshake"
    # The script has no .py suffix (it is run by hand), so import it by loader.
    loader = importlib.machinery.SourceFileLoader("bench_handshake", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being made.
    sys.modules[loader.name] = module
    loader.exec_module(module)
    return module


def check_common(report: dict, count: int) -> None:
    check(report["count"] == count, f"the bench was asked for {report['count']} SAs, not {count}")
    check(report["established"] == count and report["failed"] == 0,
          f"{report['established']} of {count} established, {report['failed']} failed: "
          f"{report.get('failure_reasons')} {report.get('stderr', '')}")
    check(report["exit_code"] == 0, f"mobike-bench exited {report['exit_code']}")
    check(report["sas_per_s"] > 0 and report["elapsed_s"] > 0,
          f"no rate: {report['sas_per_s']} SAs/s over {report['elapsed_s']} s")
    lat = report["latency_ms"]
    check(0 < lat["p50"] <= lat["p99"] <= lat["max"], f"latency percentiles out of order: {lat}")

    resp = report["responder"]
    check(resp is not None and resp["rss_before"] and resp["rss_after"],
          f"no memory reading of the responder: {resp}")
    check(isinstance(resp["bytes_per_sa"], (int, float)), f"no bytes per SA: {resp}")
    # The memory was read while the SAs were up: the responder must still hold them all.
    view = report["responder_view"]
    check(view["ike_sas"] == count and view["half_open"] == 0,
          f"mobiked holds {view['ike_sas']} IKE SAs ({view['half_open']} half-open), expected {count}")
    child = view["stats"]["child"]["established"]
    check(child == count, f"mobiked counted {child} Child SAs, expected {count}")


def check_ecdsa_vips(report: dict, count: int) -> None:
    check(report.get("auth") == "pubkey" and report.get("key") == "ECDSA P-256",
          f"the bench authenticated by {report.get('auth')!r} ({report.get('key')!r}), "
          f"not by an ECDSA P-256 certificate")
    check(report.get("vip") is True, f"the bench did not ask for virtual IPs: vip = {report.get('vip')!r}")
    check(report.get("vips_assigned") == count,
          f"{report.get('vips_assigned')} of {count} SAs got a virtual IP")
    check(report.get("vips_distinct") == count,
          f"mobiked handed out {report.get('vips_distinct')} different addresses to {count} SAs")
    check(report.get("vips_in_ts") == count,
          f"{report.get('vips_in_ts')} of {count} Child SAs have TSi narrowed to their virtual IP")
    # mobiked's own view, read while the SAs were up: one online lease per SA.
    view = report["responder_view"]
    check(view.get("leases_online") == count,
          f"mobiked's list-pools shows {view.get('leases_online')} online leases, expected {count}: "
          f"{view.get('pools')}")


def test(lab):
    case = netns_param(CASES)
    spec = CASES[case]
    count = spec["count"]
    hs = load_handshake_script()
    topo = hs.topology(lab)
    params = hs.Params(count=count, concurrency=16, rate=0, timeout=20, settle=0.2,
                       mobiked_log_level="info", auth=spec.get("auth", "psk"),
                       vips=spec.get("vips", False))
    report = hs.bench_mobiked(lab, topo, params)
    log(f"report: {report['established']} established, {report['failed']} failed, "
        f"{report['sas_per_s']:.1f} SAs/s, responder {report.get('responder')}"
        + (f", {report.get('vips_assigned')} virtual IPs" if params.vips else ""))
    check_common(report, count)
    if case == "ecdsa_vips":
        check_ecdsa_vips(report, count)


run_test(test, "mobike-bench handshake smoke against mobiked")
