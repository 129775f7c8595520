#!/usr/bin/env python3
"""bench/plot and bench/plotlib.py on the small reports in fixtures/ (the shapes the
benches write; make_fixtures.py made them), offline, without root:

- every kind of figure is written as SVG and PNG; the SVG parses as XML and carries the
  figure's title, axis labels and the names of both implementations;
- a report missing a field its figure needs makes bench/plot exit 1 with one line naming
  the field (no traceback), and a bench's own call (plotlib.after_bench) prints one line;
- without matplotlib, after_bench prints one line saying no plot was written and why, and
  bench/plot exits 77.

Needs matplotlib (Debian: python3-matplotlib) for the first part: exit 77 (skipped) when
the interpreter running this test has none, after the checks that need none.
Usage: test_plots.py [PYTHON]  (the interpreter to run bench/plot with; default this one)
"""

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

sys.dont_write_bytecode = True
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = HERE / "fixtures"
PLOT = ROOT / "bench" / "plot"
PYTHON = sys.argv[1] if len(sys.argv) > 1 else sys.executable
SVG_NS = "{http://www.w3.org/2000/svg}"

# fixture -> texts its SVG must contain
EXPECT = {
    "mobike-move": ["MOBIKE move", "mobiked <-> mobiked", "strongSwan <-> strongSwan",
                    "time since the change (ms)", "ping reply", "the change", "scenario 1", "scenario 2",
                    "1 of 3 runs failed", "stall "],
    "responder-move": ["Responder switch", "mobiked <-> mobiked", "strongSwan <-> strongSwan",
                       "time since the change (ms)", "(deleted)", "no reply after", "not run (n/a)"],
    "handshake": ["IKE SA set-up, N = 50", "mobiked", "strongSwan (charon)", "SAs/s", "bytes/SA", "CPU µs/SA",
                  "3605", "22127"],
    "handshake-sweep": ["IKE SA set-up against N", "mobiked", "strongSwan (charon)", "N (IKE SAs set up)",
                        "set-up rate vs N", "SAs/s", "bytes/SA"],
    "esp-throughput": ["ESP throughput", "mobiked <-> mobiked", "strongSwan <-> strongSwan", "bare path",
                       "Mbit/s", "NAT + bridge"],
    "failover": ["Cluster failover", "mobiked", "strongSwan", "SIGKILL", "2/3 recovered"],
}
BROKEN = {"mobike-move-no-trace": "missing field 'trace'",
          "handshake-sweep-missing-rate": "sweep[1].charon: missing field 'sas_per_s'"}

failures = []


def check(cond: bool, msg: str) -> None:
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        failures.append(msg)


def run(argv, **kw):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, **kw)


def svg_texts(path: Path) -> str:
    root = ET.parse(path).getroot()  # raises on malformed XML
    check(root.tag == SVG_NS + "svg", f"{path.name}: root element is <svg> ({root.tag})")
    return "\n".join("".join(t.itertext()) for t in root.iter(SVG_NS + "text"))


def no_matplotlib(tmp: Path) -> None:
    """plotlib as a bench calls it, in an interpreter where matplotlib cannot be imported."""
    code = ("import sys; sys.modules['matplotlib'] = None; sys.path.insert(0, sys.argv[1]); import json, plotlib; "
            "files = plotlib.after_bench(json.load(open(sys.argv[2])), sys.argv[3], 'handshake'); "
            "print('FILES', files)")
    r = run([PYTHON, "-c", code, str(ROOT / "bench"), str(FIXTURES / "handshake.json"), str(tmp / "nompl.json")])
    lines = [ln for ln in r.stdout.splitlines() if not ln.startswith("FILES")]
    check(r.returncode == 0 and "FILES []" in r.stdout, f"after_bench without matplotlib returns no files: "
          f"rc {r.returncode} {r.stdout!r} {r.stderr[-500:]!r}")
    check(len(lines) == 1 and lines[0].startswith("plot: no plot written: matplotlib cannot be imported"),
          f"after_bench without matplotlib prints one line saying why: {lines}")
    check(not list(tmp.glob("nompl.*")), "no figure file without matplotlib")
    # bench/plot: exit 77, one line, no traceback.
    code = ("import sys, runpy; sys.modules['matplotlib'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    r = run([PYTHON, "-c", code, str(PLOT), "--out-dir", str(tmp), str(FIXTURES / "failover.json")])
    check(r.returncode == 77 and "no plot written" in r.stderr and "Traceback" not in r.stderr,
          f"bench/plot without matplotlib: exit 77 and one line (rc {r.returncode}, {r.stderr.strip()!r})")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mobike-plots-") as d:
        tmp = Path(d)
        no_matplotlib(tmp)
        have = run([PYTHON, "-c", "import matplotlib"]).returncode == 0
        # A missing field: one line per report naming it, exit 1, no traceback (one call
        # for all: every start of matplotlib costs seconds on a loaded machine).
        if have:
            r = run([PYTHON, str(PLOT), "--out-dir", str(tmp)] + [str(FIXTURES / f"{n}.json") for n in BROKEN])
            lines = r.stderr.strip().splitlines()
            check(r.returncode == 1 and "Traceback" not in r.stderr and len(lines) == len(BROKEN),
                  f"reports missing a field: exit 1, one line each (rc {r.returncode}, {r.stderr.strip()!r})")
            for name, words in BROKEN.items():
                check(any(f"{name}.json" in ln and words in ln for ln in lines), f"{name}: the line names {words!r}")
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import json, plotlib; "
                "plotlib.after_bench(json.load(open(sys.argv[2])), sys.argv[3], 'mobike-move')")
        r = run([PYTHON, "-c", code, str(ROOT / "bench"), str(FIXTURES / "mobike-move-no-trace.json"),
                 str(tmp / "bench-broken.json")])
        check(r.returncode == 0 and r.stdout.startswith("plot: no plot written:") and "Traceback" not in r.stderr
              and len(r.stdout.strip().splitlines()) == 1,
              f"a bench's after_bench on a broken report: one line, no exception ({r.stdout.strip()!r})")
        r = run([PYTHON, str(PLOT), str(tmp / "absent.json")])
        check(r.returncode == 1 and "cannot read" in r.stderr and "Traceback" not in r.stderr,
              f"bench/plot on a missing file: exit 1, one line ({r.stderr.strip()!r})")
        if not have:
            print(f"SKIP: {PYTHON} has no matplotlib (Debian: python3-matplotlib): figures not rendered")
            return 1 if failures else 77
        r = run([PYTHON, str(PLOT), "--out-dir", str(tmp)] + [str(FIXTURES / f"{n}.json") for n in EXPECT])
        check(r.returncode == 0,
              f"bench/plot on every fixture: exit 0 (rc {r.returncode}, {r.stderr.strip()[-800:]!r})")
        for name, texts in EXPECT.items():
            svg, png = tmp / f"{name}.svg", tmp / f"{name}.png"
            check(png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{name}: PNG written")
            if not svg.is_file():
                check(False, f"{name}: SVG written")
                continue
            try:
                text = svg_texts(svg)
            except ET.ParseError as e:
                check(False, f"{name}: SVG parses as XML: {e}")
                continue
            missing = [t for t in texts if t not in text]
            check(not missing, f"{name}: SVG has {texts}" + (f"; missing {missing}" if missing else ""))
        # The kind from the report's shape when it has no "bench" field (older reports).
        import json
        old = []
        for name in ("mobike-move", "responder-move", "handshake", "esp-throughput", "failover"):
            rep = json.loads((FIXTURES / f"{name}.json").read_text())
            del rep["bench"]
            old.append(tmp / f"old-{name}.json")
            old[-1].write_text(json.dumps(rep))
        r = run([PYTHON, str(PLOT), "--format", "svg"] + [str(p) for p in old])
        check(r.returncode == 0 and all(p.with_suffix(".svg").is_file() for p in old),
              f"reports without a 'bench' field: recognised by shape (rc {r.returncode}, {r.stderr.strip()!r})")
        kinds = {p.name: svg_texts(p.with_suffix(".svg")) for p in old if p.with_suffix(".svg").is_file()}
        for p, first in zip(old, ("MOBIKE move", "Responder switch", "IKE SA set-up", "ESP throughput",
                                  "Cluster failover")):
            check(first in (kinds.get(p.name) or ""), f"{p.name}: drawn as {first!r}")
    print(f"{len(failures)} failure(s)" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
