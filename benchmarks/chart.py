"""Draw a ``benchmarks/wsgi.py`` run as a PNG (needs matplotlib: the ``bench`` extra).

``benchmarks/wsgi.py --chart PATH.png`` calls this at the end of a run; to
draw a past run again from its raw results::

    python -m benchmarks.chart --from /tmp/cogen-bench.jsonl [--run RUN_ID] perf.png

One panel per throughput workload (req/s per server, one bar per scenario,
cogen-web first and its name in bold), one for the long polls (ms from the
signal to the last answer: shorter is better) and one for the idle
connections (KiB per idle connection: smaller is better). The machine, the
versions and the command line of the run are printed under the panels, so
the picture carries its own provenance.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["load_summary", "main", "render"]

SCENARIO_COLORS = {"c10": "#8fb3d9", "c100": "#1f5fa8", "close-c10": "#d9a35f"}


def load_summary(path: Path, run: str | None = None) -> dict[str, Any]:
    """The ``summary`` row of run ``run`` (default: the last run that has one) in a results file.

    Raises LookupError when there is none.
    """
    found: dict[str, Any] | None = None
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row.get("kind") == "summary" and (run is None or row.get("run") == run):
                found = row
    if found is None:
        raise LookupError(f"no summary row{f' for run {run}' if run else ''} in {path}")
    return found


def _order(names: Sequence[str]) -> list[str]:
    """cogen first, then the others as the run had them."""
    return sorted(names, key=lambda n: (n != "cogen", list(names).index(n)))


def _barh(ax: Any, names: list[str], series: list[tuple[str, list[float | None], str]], unit: str,
          better: str = "higher") -> None:
    """Grouped horizontal bars: one group per server (top to bottom), one bar per series.

    The peers' c100 bars (or the last series') carry cogen's ratio to them (``better``:
    ``higher`` divides cogen by the peer, ``lower`` the peer by cogen, so
    above 1 is cogen better either way).
    """
    n = max(1, len(series))
    height = 0.8 / n
    labels = [label for label, _, _ in series]
    ratio_at = labels.index("c100") if "c100" in labels else n - 1
    top = max((v for _, vals, _ in series for v in vals if v), default=1.0)
    for i, (label, values, color) in enumerate(series):
        ys = [len(names) - 1 - k + 0.4 - height * (i + 0.5) for k in range(len(names))]
        ax.barh(ys, [v or 0 for v in values], height=height, color=color, label=label)
        mine = values[names.index("cogen")] if "cogen" in names else None
        for name, y, v in zip(names, ys, values, strict=True):
            kilo = v is not None and v >= 1000 and better == "higher"
            text = "-" if v is None else (f"{v / 1000:.1f}k" if kilo else f"{v:.3g}")
            if i == ratio_at and name != "cogen" and mine and v:
                text += f"  (cogen {mine / v if better == 'higher' else v / mine:.2f}x)"
            ax.text((v or 0) + top * 0.01, y, text, va="center", fontsize=6)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(list(reversed(names)), fontsize=7)
    for tick in ax.get_yticklabels():
        if tick.get_text() == "cogen":
            tick.set_fontweight("bold")
    ax.set_xlim(0, top * 1.45)
    ax.set_xlabel(unit, fontsize=7)
    ax.tick_params(axis="x", labelsize=6)
    if len(series) > 1:
        ax.legend(fontsize=6, loc="upper right")


def render(summary: dict[str, Any], out: Path) -> Path:
    """Draw ``summary`` (a ``summary`` row of benchmarks/wsgi.py) into the PNG ``out``; returns ``out``.

    Raises ImportError without matplotlib and ValueError for a summary with no figures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, list[str], list[tuple[str, list[float | None], str]], str, str]] = []
    for workload, figs in summary.get("throughput", {}).items():
        names = _order(list(figs))
        scen = [s for s in SCENARIO_COLORS if any(s in f for f in figs.values())]
        series = [(s, [figs[n].get(s) for n in names], SCENARIO_COLORS[s]) for s in scen]
        panels.append((f"{workload}: req/s", names, series, "requests/s (longer is better)", "higher"))
    # (kind, the row key naming the count, title, figure, unit, colour, y label)
    for kind, count_key, title, key, unit, colour, label in (
            ("longpoll", "count", "{} long polls, one signal", "ms", "ms", "#6a9f4f",
             "ms to the last answer (shorter is better)"),
            ("idle", "idle", "{} idle keep-alive connections", "kib_per_conn", "KiB", "#a35fa8",
             "KiB per idle connection (shorter is better)")):
        by_server = summary.get(kind)
        if by_server:
            names = _order(list(by_server))
            count = next(iter(by_server.values())).get(count_key, "")
            panels.append((title.format(count), names,
                           [(unit, [by_server[n].get(key) for n in names], colour)], label, "lower"))
    if not panels:
        raise ValueError("the summary has no figures to draw")
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    bars = max(len(names) * len(series) for _, names, series, _, _ in panels)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 0.3 + max(2.6, 0.9 + 0.12 * bars) * rows),
                             squeeze=False)
    for ax, (title, names, series, unit, better) in zip(axes.flat, panels, strict=False):
        _barh(ax, names, series, unit, better)
        ax.set_title(title, fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    meta = summary.get("meta", {})
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
    where = (f"--workers {meta['workers']}: servers on both CPUs, wrk pinned to one"
             if meta.get("workers", 1) > 1 else "server pinned to one CPU, wrk to the other")
    foot = (f"run {summary.get('run', '?')} on {meta.get('machine', '?')}; {where}; "
            f"medians of {meta.get('repeats', '?')} x {meta.get('duration', '?')} s\n{versions}\n"
            f"{meta.get('command', '')}")
    fig.text(0.01, 0.005, foot, fontsize=5.5, va="bottom", family="monospace", wrap=True)
    fig.tight_layout(rect=(0, 0.035 + 0.12 / rows, 1, 1))
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.chart --from RESULTS.jsonl [--run ID] OUT.png``; the exit status."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.chart",
                                description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--from", dest="source", type=Path, required=True, help="benchmarks/wsgi.py's --out file")
    p.add_argument("--run", default=None, help="the run id (default: the last run in the file)")
    p.add_argument("out", type=Path, help="the PNG to write")
    ns = p.parse_args(argv)
    try:
        summary = load_summary(ns.source, ns.run)
    except (OSError, LookupError, ValueError) as exc:
        print(f"benchmarks.chart: {exc}", file=sys.stderr)
        return 2
    try:
        render(summary, ns.out)
    except ImportError:
        print("benchmarks.chart: matplotlib is not installed (pip install matplotlib, or cogen's "
              "'bench' extra)", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"benchmarks.chart: {exc}", file=sys.stderr)
        return 2
    print(ns.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
