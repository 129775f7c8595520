"""mobike-bench handshake, small: 50 IKE SAs (one Child SA each) against mobiked, through
the very code of bench/handshake (its topology, responder configuration and bench call),
so that neither the bench binary nor the script can rot unnoticed. Checks the JSON report,
never a timing: every SA established, no failures, a positive rate, and a memory reading
of the responder while its SAs are up."""

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

from netns import check, log, run_test  # noqa: E402

COUNT = 50


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


def test(lab):
    hs = load_handshake_script()
    topo = hs.topology(lab)
    params = hs.Params(count=COUNT, concurrency=16, rate=0, timeout=20, settle=0.2,
                       mobiked_log_level="info")
    report = hs.bench_mobiked(lab, topo, params)
    log(f"report: {report['established']} established, {report['failed']} failed, "
        f"{report['sas_per_s']:.1f} SAs/s, responder {report.get('responder')}")

    check(report["count"] == COUNT, f"the bench was asked for {report['count']} SAs, not {COUNT}")
    check(report["established"] == COUNT and report["failed"] == 0,
          f"{report['established']} of {COUNT} established, {report['failed']} failed: "
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
    check(view["ike_sas"] == COUNT and view["half_open"] == 0,
          f"mobiked holds {view['ike_sas']} IKE SAs ({view['half_open']} half-open), expected {COUNT}")
    child = view["stats"]["child"]["established"]
    check(child == COUNT, f"mobiked counted {child} Child SAs, expected {COUNT}")


run_test(test, f"mobike-bench handshake smoke ({COUNT} SAs against mobiked)")
