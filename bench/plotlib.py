"""Figures of the benches' JSON reports (bench/README.md, "Figures").

Every bench that writes JSON (--out FILE.json) calls `after_bench(report, path)`, which
writes FILE.svg and FILE.png next to it; `bench/plot FILE.json...` renders them again
from a report. Plotting is optional: without matplotlib (Debian: python3-matplotlib) a
bench still writes its JSON and prints one line saying that no plot was written and why.

Kinds (the report's "bench" field; older reports without it are recognised by shape):
  mobike-move     the ping through the tunnel around the change, every run one line of
                  replies, scenarios as rows, implementations side by side
  responder-move  the same for the responder's switch
  handshake       one N: bars of SAs/s, bytes/SA, responder CPU/SA, mobiked vs charon;
                  a sweep (--sweep): those figures against N, a line per daemon
  esp-throughput  bars of the median Mbit/s per topology and path, runs as dots
  failover        bars of the median seconds to the first reply after the kill, per client

A report that lacks what its figure needs raises PlotDataError naming the field.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

KINDS = ("mobike-move", "responder-move", "handshake", "esp-throughput", "failover")

# One colour per implementation, the same in every figure.
COLOURS = {"mobiked": "#1f77b4", "strongswan": "#d62728", "mixed": "#9467bd", "bare": "#7f7f7f",
           "swan-dpd": "#ff7f0e"}
NAMES = {"mobiked": "mobiked", "strongswan": "strongSwan", "charon": "strongSwan (charon)",
         "mixed": "strongSwan ini. + mobiked res.", "bare": "bare path", "swan-dpd": "strongSwan, no failover (DPD)"}


class PlotDataError(Exception):
    """The report lacks something its figure needs (the message names it)."""


class PlotUnavailable(Exception):
    """No plotting library here (the message says why)."""


def need(d, path: str, what: str):
    """d's value at the dotted path, or PlotDataError('<what>: missing field <path>')."""
    cur = d
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise PlotDataError(f"{what}: missing field '{path}'")
    return cur


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PlotUnavailable(f"matplotlib cannot be imported by {sys.executable} ({e}; Debian: apt-get install "
                              f"python3-matplotlib, for /usr/bin/python3)")
    # Text stays text in the SVG (searchable, and the test reads the labels).
    matplotlib.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.titlesize": 9,
                                "figure.titlesize": 11, "svg.hashsalt": "mobiked"})
    return plt


def detect_kind(report: dict) -> str:
    if not isinstance(report, dict):
        raise PlotDataError("the report is not a JSON object")
    k = report.get("bench")
    if k:
        if k not in KINDS:
            raise PlotDataError(f"no figure for bench '{k}' (known: {', '.join(KINDS)})")
        return k
    runs = report.get("runs")
    if isinstance(runs, list) and runs and isinstance(runs[0], dict):
        if "outcome" in runs[0] or runs[0].get("impl") == "mixed":
            return "responder-move"
        if "where" in runs[0]:
            return "mobike-move"
        if "impl" in runs[0]:
            return "responder-move"
    if "params" in report and ("sweep" in report or "mobiked" in report or "charon" in report):
        return "handshake"
    if "runs_mbit_s" in report or "median_mbit_s" in report:
        return "esp-throughput"
    if "time" in report or "lease_ttl" in report:
        return "failover"
    raise PlotDataError("cannot tell which bench wrote this report (no 'bench' field, and its shape is "
                        "none of " + ", ".join(KINDS) + ")")


# --------------------------------------------------------------------------- move traces

def _stall(run: dict, t: list[float]):
    """(start, end) ms of the stall the bench measured for this run: the gap between
    replies ending after the change (t = 0), and by a second after the peers showed the
    new address (metrics moved_ms / peer_update_ms, the benches' own window), whose
    length is the run's metrics.stall_ms; the longest such gap without those figures;
    (last reply, None) when traffic never came back (outcome deleted/stuck, or no reply
    after the change); None without gaps."""
    t = sorted(t)
    if run.get("outcome") in ("deleted", "stuck") or not any(x > 0 for x in t):
        return (t[-1] if t else 0.0), None
    m = run.get("metrics") or {}
    seen = m.get("moved_ms", m.get("peer_update_ms"))
    until = seen + 1000 if isinstance(seen, (int, float)) else None
    gaps = [(b - a, a, b) for a, b in zip(t, t[1:]) if b > 0 and (until is None or b <= until)]
    if not gaps:
        return None
    want = m.get("stall_ms")
    if isinstance(want, (int, float)):
        _, a, b = min(gaps, key=lambda g: (abs(g[0] - want), g[2]))
    else:
        _, a, b = max(gaps)
    return a, b


def _trace_figure(report: dict, what: str, columns: list, col_label, runs_of, titles: dict, suptitle: str):
    """Rows: scenarios; columns: implementations; each panel: every run of that pairing
    one row of ping replies (x: ms since the change), its stall shaded."""
    plt = _pyplot()
    scenarios = need(report, "scenarios", what)
    if not isinstance(scenarios, list) or not scenarios:
        raise PlotDataError(f"{what}: field 'scenarios' is empty")
    nrows, ncols = len(scenarios), max(len(columns), 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols + 0.6, 1.2 + 2.3 * nrows), squeeze=False)
    for i, sc in enumerate(scenarios):
        panels = []
        for j, col in enumerate(columns):
            runs = runs_of(sc, col)
            traced = []
            for n, r in enumerate(runs):
                if not r.get("ok"):
                    continue
                tr = need(r, "trace", f"{what}, scenario {sc}, {col_label(col)} run {n + 1}")
                t = need(tr, "t_ms", f"{what}, scenario {sc}, {col_label(col)} run {n + 1}: trace")
                traced.append((r, [float(x) for x in t]))
            panels.append((axes[i][j], col, runs, traced))
        # The row's x range: from before the change to past the latest resumption.
        ends = []
        for _, _, _, traced in panels:
            for r, t in traced:
                g = _stall(r, t)
                if g and g[1] is not None:
                    ends.append(g[1])
        right = max([200.0] + [e * 1.25 + 50 for e in ends])
        left = -min(max(right * 0.25, 100.0), 1000.0)
        for ax, col, runs, traced in panels:
            ax.set_xlim(left, right)
            ax.axvline(0, color="black", linewidth=1, linestyle="--")
            for k, (r, t) in enumerate(traced):
                y = k + 1
                inside = [x for x in t if left <= x <= right]
                ax.plot(inside, [y] * len(inside), linestyle="none", marker="|", markersize=7,
                        color=COLOURS.get((col[0] if isinstance(col, tuple) else col).lower(), "#333333"))
                g = _stall(r, t)
                if not g:
                    continue
                a, b = g
                if b is None:
                    ax.axhspan(y - 0.35, y + 0.35, xmin=(max(a, left) - left) / (right - left), xmax=1,
                               color="#f4a0a0", alpha=0.6)
                    outcome = r.get("outcome")
                    ax.text(right, y + 0.38, f"no reply after {a:.0f} ms" + (f" ({outcome})" if outcome else ""),
                            ha="right", va="bottom", fontsize=7)
                else:
                    ax.fill_between([a, b], y - 0.35, y + 0.35, color="#f4a0a0", alpha=0.6, linewidth=0)
                    ax.text(min(b, right), y + 0.38, f"stall {b - a:.0f} ms", ha="right" if b > right * 0.8 else "left",
                            va="bottom", fontsize=7)
            ok = len(traced)
            ax.set_ylim(0.3, max(ok, 1) + 0.9)
            ax.set_yticks(range(1, ok + 1))
            ax.set_ylabel("run")
            ax.set_xlabel("time since the change (ms)")
            failed = len(runs) - ok
            desc = titles.get(str(sc), titles.get(sc, ""))
            head = f"scenario {sc}, {col_label(col)}" + (f" ({failed} of {len(runs)} runs failed)" if failed else "")
            ax.set_title("\n".join([head] + textwrap.wrap(desc, 62)[:2]), loc="left")
            if not runs:
                ax.text(0.5, 0.5, "not run (n/a)", ha="center", va="center", transform=ax.transAxes)
            ax.grid(axis="x", alpha=0.3)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    fig.legend(handles=[Line2D([], [], color="#333333", marker="|", linestyle="none", markersize=7, label="ping reply"),
                        Patch(color="#f4a0a0", alpha=0.6, label="the stall the change caused (its length)"),
                        Line2D([], [], color="black", linestyle="--", label="the change")],
               loc="lower center", fontsize=8, ncol=3, frameon=False)
    fig.suptitle(suptitle)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1 - 0.1 / fig.get_figheight()))
    return fig


def fig_mobike_move(report: dict):
    what = "mobike-move report"
    runs = need(report, "runs", what)
    if not isinstance(runs, list):
        raise PlotDataError(f"{what}: field 'runs' is not a list")
    for n, r in enumerate(runs):
        need(r, "scenario", f"{what}, run {n + 1}")
        need(r, "impl", f"{what}, run {n + 1}")
    columns = []
    for r in runs:
        c = (r["impl"], r.get("where", "host"))
        if c not in columns:
            columns.append(c)
    columns.sort(key=lambda c: (c[1] != "host", c[0] != "mobiked"))

    def label(c):
        impl, where = c
        return f"{NAMES.get(impl, impl)} <-> {NAMES.get(impl, impl)}" + (" (UML, kernel ESP)" if where == "uml" else "")

    def runs_of(sc, c):
        return [r for r in runs if r["scenario"] == sc and (r["impl"], r.get("where", "host")) == c]
    return _trace_figure(report, what, columns, label, runs_of, report.get("titles") or {},
                         "MOBIKE move (the initiator's address changes):\n10 ms ping through the tunnel, "
                         "each row one run")


def fig_responder_move(report: dict):
    what = "responder-move report"
    runs = need(report, "runs", what)
    if not isinstance(runs, list):
        raise PlotDataError(f"{what}: field 'runs' is not a list")
    for n, r in enumerate(runs):
        need(r, "scenario", f"{what}, run {n + 1}")
        need(r, "impl", f"{what}, run {n + 1}")
    order = ["mobiked", "strongswan", "mixed"]
    columns = sorted({r["impl"] for r in runs}, key=lambda c: order.index(c) if c in order else 9)
    labels = {"mobiked": "mobiked <-> mobiked (SWITCH_TO_IP_ADDRESS)",
              "strongswan": "strongSwan <-> strongSwan (MOBIKE)",
              "mixed": "strongSwan initiator, mobiked responder"}

    def runs_of(sc, c):
        return [r for r in runs if r["scenario"] == sc and r["impl"] == c]
    return _trace_figure(report, what, columns, lambda c: labels.get(c, c), runs_of, report.get("titles") or {},
                         "Responder switch (the gateway's address changes):\n10 ms ping through the tunnel, "
                         "each row one run")


# --------------------------------------------------------------------------- handshake

HS_FIGURES = (("sas_per_s", "set-up rate", "SAs/s"),
              ("responder.bytes_per_sa", "responder memory per SA (RSS)", "bytes/SA"),
              ("responder.cpu_us_per_sa", "responder CPU per SA", "CPU µs/SA"))


def _hs_daemons(entry: dict) -> list[str]:
    return [d for d in ("mobiked", "charon") if d in entry]


def _hs_subtitle(report: dict) -> str:
    p = report.get("params") or {}
    bits = [f"auth {p.get('auth', 'psk')}"]
    if p.get("vips"):
        bits.append("virtual IPs")
    if p.get("mobiked_dataplane"):
        bits.append(f"mobiked dataplane {p['mobiked_dataplane']}")
    if p.get("concurrency"):
        bits.append(f"concurrency {p['concurrency']}")
    return ", ".join(bits)


def fig_handshake(report: dict):
    what = "handshake report"
    plt = _pyplot()
    need(report, "params", what)
    sweep = report.get("sweep")
    if sweep is None:
        daemons = _hs_daemons(report)
        if not daemons:
            raise PlotDataError(f"{what}: missing field 'mobiked' or 'charon' (or 'sweep')")
        count = need(report, "params.count", what)
        fig, axes = plt.subplots(1, len(HS_FIGURES), figsize=(10, 3.6))
        for ax, (key, title, unit) in zip(axes, HS_FIGURES):
            vals = [need(report[d], key, f"{what}, {d}") for d in daemons]
            xs = range(len(daemons))
            bars = ax.bar(xs, [v or 0 for v in vals], color=[COLOURS["mobiked" if d == "mobiked" else "strongswan"]
                                                            for d in daemons],
                          )
            for b, v in zip(bars, vals):
                ax.annotate("-" if v is None else f"{v:.0f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                            ha="center", va="bottom", fontsize=8)
            ax.set_xticks(list(xs), [NAMES[d] for d in daemons])
            ax.set_ylabel(unit)
            ax.set_title(title)
            ax.margins(y=0.15)
        fig.suptitle(f"IKE SA set-up, N = {count} SAs ({_hs_subtitle(report)})")
        fig.tight_layout()
        return fig
    if not isinstance(sweep, list) or not sweep:
        raise PlotDataError(f"{what}: field 'sweep' is empty")
    for i, e in enumerate(sweep):
        need(e, "count", f"{what}, sweep[{i}]")
        if not _hs_daemons(e):
            raise PlotDataError(f"{what}, sweep[{i}]: missing field 'mobiked' or 'charon'")
    daemons = [d for d in ("mobiked", "charon") if any(d in e for e in sweep)]
    fig, axes = plt.subplots(1, len(HS_FIGURES), figsize=(11, 3.8))
    for ax, (key, title, unit) in zip(axes, HS_FIGURES):
        for d in daemons:
            pts = []
            for i, e in enumerate(sweep):
                if d in e:
                    v = need(e[d], key, f"{what}, sweep[{i}].{d}")
                    if v is not None:
                        pts.append((e["count"], v))
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    color=COLOURS["mobiked" if d == "mobiked" else "strongswan"], label=NAMES[d])
        ax.set_xlabel("N (IKE SAs set up)")
        ax.set_ylabel(unit)
        ax.set_title(f"{title} vs N")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"IKE SA set-up against N ({_hs_subtitle(report)})")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- bars

def fig_esp_throughput(report: dict):
    what = "esp-throughput report"
    plt = _pyplot()
    med = need(report, "median_mbit_s", what)
    runs = report.get("runs_mbit_s") or {}
    if not isinstance(med, dict) or not med:
        raise PlotDataError(f"{what}: field 'median_mbit_s' is empty")
    kinds = ["bare", "mobiked", "strongswan"]
    topos = list(med)
    fig, ax = plt.subplots(figsize=(2.2 + 2.4 * len(topos), 3.8))
    width = 0.8 / len(kinds)
    for k, kind in enumerate(kinds):
        xs = [i + (k - 1) * width for i in range(len(topos))]
        vals = [need(med, f"{t}.{kind}", what) for t in topos]
        bars = ax.bar(xs, vals, width, color=COLOURS[kind],
                      label={"bare": "bare path", "mobiked": "mobiked <-> mobiked",
                             "strongswan": "strongSwan <-> strongSwan"}[kind])
        for b, v in zip(bars, vals):
            ax.annotate(f"{v:.0f}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                        fontsize=7)
        for x, t in zip(xs, topos):
            pts = (runs.get(t) or {}).get(kind) or []
            ax.plot([x] * len(pts), pts, linestyle="none", marker=".", color="black", markersize=3)
    ax.set_yscale("log")
    top = max(max(need(med, f"{t}.{k}", what) for k in kinds) for t in topos)
    ax.set_ylim(10, top * 10)  # room for the legend above the bars
    ax.set_xticks(range(len(topos)), [{"nat": "NAT", "bridge": "NAT + bridge"}.get(t, t) for t in topos])
    ax.set_ylabel("Mbit/s (median, log scale; dots: runs)")
    ax.legend(fontsize=8, loc="upper right", ncol=3)
    ax.set_title(f"ESP throughput, iperf3 TCP, AES-GCM-128, median of {report.get('repeat', '?')} runs")
    fig.tight_layout()
    return fig


def fig_failover(report: dict):
    what = "failover report"
    plt = _pyplot()
    part = need(report, "time", what)
    if not isinstance(part, dict) or not part:
        raise PlotDataError(f"{what}: field 'time' is empty")
    kinds = list(part)
    fig, ax = plt.subplots(figsize=(1.5 + 2.0 * len(kinds), 3.8))
    for i, kind in enumerate(kinds):
        m = need(part, f"{kind}.median", what)
        secs = need(part, f"{kind}.seconds", what)
        b = ax.bar([i], [m or 0], 0.6, color=COLOURS.get(kind, "#333333"), label=NAMES.get(kind, kind))[0]
        rec, rounds = part[kind].get("recovered"), part[kind].get("rounds")
        top = max([m or 0] + [s for s in secs if s is not None])
        ax.annotate(("never" if m is None else f"median {m:.2f} s") + (f"\n{rec}/{rounds} recovered" if rounds else ""),
                    (b.get_x() + b.get_width() / 2, top), xytext=(0, 4), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7)
        pts = [s for s in secs if s is not None]
        ax.plot([i] * len(pts), pts, linestyle="none", marker=".", color="black", markersize=4)
    ax.set_xticks(range(len(kinds)), [NAMES.get(k, k) for k in kinds], fontsize=8)
    ax.set_ylabel("s from SIGKILL to the first ping reply\n(median; dots: rounds)")
    ax.margins(y=0.25)
    ax.set_title(f"Cluster failover, gw1 killed (lease_ttl {report.get('lease_ttl', '?')})")
    fig.tight_layout()
    return fig


FIGURES = {"mobike-move": fig_mobike_move, "responder-move": fig_responder_move, "handshake": fig_handshake,
           "esp-throughput": fig_esp_throughput, "failover": fig_failover}


def write_plots(report: dict, json_path, kind: str | None = None, formats=("svg", "png")) -> list[Path]:
    """Renders the report's figure next to json_path (same name, .svg/.png); returns the
    files. Raises PlotDataError, PlotUnavailable."""
    kind = kind or detect_kind(report)
    if kind not in FIGURES:
        raise PlotDataError(f"no figure for bench '{kind}' (known: {', '.join(KINDS)})")
    fig = FIGURES[kind](report)
    plt = _pyplot()
    base = Path(json_path)
    out = []
    try:
        for f in formats:
            p = base.with_suffix("." + f)
            fig.savefig(p, dpi=110, metadata={"Date": None} if f == "svg" else None)
            out.append(p)
    finally:
        plt.close(fig)
    return out


def after_bench(report: dict, json_path, kind: str, prefix: str = "plot") -> list[Path]:
    """For a bench that has written its JSON: the figure next to it, and one line saying
    where, or that none was written and why. Never raises: a figure is not a verdict."""
    try:
        files = write_plots(report, json_path, kind)
    except (PlotUnavailable, PlotDataError) as e:
        print(f"{prefix}: no plot written: {e}")
        return []
    except Exception as e:  # noqa: BLE001: the bench's results are already written
        print(f"{prefix}: no plot written: {type(e).__name__}: {e}")
        return []
    print(f"{prefix}: wrote {', '.join(str(p) for p in files)}")
    return files


def load(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise PlotDataError(f"cannot read {path}: {e}")
