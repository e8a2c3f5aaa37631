"""Cost curves: how throughput and peak RSS move with what grows in practice, ObjectStoreX
beside raw object_store. bench/bench.py runs them after the VM-health runs, in a time budget of
their own, and writes them as curves-*.png beside its README, with a section saying what each
shows.

  size     one object of 16 MiB to 4 GiB uploaded and downloaded, local and S3, with the rows'
           knobs (workloads upload and download of bench/osx.exs and bench/raw)
  count    a listing of 1,000 to 1,000,000 objects, memory and local (workload list; on local
           the raw program's fill_list prepares them, in a directory of the curves' own)
  streams  1 to 256 downloads at once of one 64 MiB object in one VM while the VM-health probes
           are sampled, local and S3 (bench/vm_health.exs STORE N downloads): aggregate
           throughput, peak RSS, p99 latency of the probes, long schedules; ObjectStoreX only

Every run is a fresh OS process measured by bench.py's machinery (peak RSS from wait4 through
GNU time); each point is the median of BENCH_CURVE_ROUNDS runs per tool (4), the tools taking
turns, the min-max drawn as error bars. A smoke run (BENCH_MIB below 1024) stops at 4 x
BENCH_MIB, at 10 x the list row's count and at 16 streams.

BENCH_CURVE_BUDGET minutes (by default what the rows and the VM-health runs left of the 25,
but a spare minute, at least 2; 0 leaves the curves out; with BENCH_CURVES_ONLY=1, `make
bench-curves`, the curves run alone, by default in 40 minutes, which all points fit): the
points go cheapest first, each estimated from the points of its curve measured before it (a
line through the last two, as every cost here grows linearly with the size or the count, or
not at all). A point starts only if its estimate fits in what is left; the README names those
that did not, with the estimate.
"""

from __future__ import annotations

import os
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import (
    BOUND_SLACK,
    CHUNK_MIB,
    CURVES_ONLY,
    LARGE,
    MIB,
    OSX,
    RAW,
    ROOT,
    TOOL_COLORS,
    UPLOAD_KNOBS,
    Failed,
    HealthRun,
    Row,
    Run,
    Settings,
    Tools,
    cell,
    fmt,
    growth_mib,
    health_argv,
    median,
    parse_health,
    prepare_row,
    run_process,
    run_round,
    within_bound,
)

SIZES_MIB = [16, 64, 256, 1024, 4096]
COUNTS = [1_000, 10_000, 100_000, 1_000_000]
STREAMS = [1, 4, 16, 64, 256]
# A point whose median throughput is more than this below the previous point's is a knee.
KNEE_DROP = 0.2
# Runs settle (BENCH_SETTLE) from this size up, where BENCH_SETTLE's default would have them
# settle as rows: below it the pauses would cost more of the budget than the runs themselves.
SETTLE_FROM_MIB = 256
# Rounds of the VM-health probes per run: half the table's 2,000, as the curves have many runs
# and a slow VM stretches each round (vm_health.exs stops after 10 ms a round); a smoke run's
# only show that the machinery works.
HEALTH_SAMPLES = 1000
SMOKE_HEALTH_SAMPLES = 250
# Seconds per run assumed for the first point of a curve, before anything is known.
FIRST_GUESS_S = 2.0
HEALTH_OBJECT_MIB = 64
PROBES = ("file_read", "genserver_call")
STORE_COLORS = {"memory": "#e9c46a", "local": "#2a9d8f", "s3": "#e76f51"}
TITLES = {
    "size": "Object size",
    "count": "Objects listed",
    "streams": "Downloads at once",
}


@dataclass
class Cost:
    """What a point took, in seconds, to estimate the next ones."""

    x: int
    total: float  # the whole point, preparation and pauses included
    variable: float  # of it, the timed parts and the preparation: what grows with x
    settle: float  # of it, the BENCH_SETTLE pauses
    prepared: float = 0.0  # of it, the preparation


@dataclass
class Skip:
    cost: Cost  # the estimate
    why: str


@dataclass
class Curve:
    figure: str  # size, count or streams
    store: str  # memory, local or s3
    workload: str  # upload, download, list or streams
    spec: str  # the store as the programs take it
    points: list[Row]  # one per x (args[0]), smallest first
    costs: list[Cost] = field(default_factory=list)
    skipped: dict[int, Skip] = field(default_factory=dict)
    health: dict[int, list[HealthRun]] = field(default_factory=dict)  # streams only

    def next_point(self) -> Row | None:
        done = {c.x for c in self.costs} | set(self.skipped)
        return next((p for p in self.points if p.args[0] not in done), None)

    def measured(self) -> list[Row]:
        done = {c.x for c in self.costs}
        return [p for p in self.points if p.args[0] in done]

    def name(self) -> str:
        return f"{self.store} · {self.workload}"


@dataclass
class CurveSet:
    curves: list[Curve]
    seconds: float
    budget: float  # minutes


def health_samples(s: Settings) -> int:
    return HEALTH_SAMPLES if s.mib >= 1024 else SMOKE_HEALTH_SAMPLES


def x_label(figure: str, x: int) -> str:
    if figure == "size":
        return f"{x // 1024} GiB" if x % 1024 == 0 else f"{x} MiB"
    if figure == "count":
        return f"{x:,}"
    return f"{x} download{'s' if x > 1 else ''}"


def build_curves(s: Settings, stores: dict[str, str], scratch: Path) -> list[Curve]:
    tools = [t for t in (OSX, RAW) if t in s.only]
    sizes = [m for m in SIZES_MIB if m <= 4 * s.mib]
    counts = [n for n in COUNTS if n <= s.count(1_000_000)]
    streams = [n for n in STREAMS if n <= 16 or s.mib >= 1024]
    curves = []
    for kind in ("local", "s3"):
        if kind not in stores or not tools:
            continue
        part, inflight = UPLOAD_KNOBS[kind]
        for workload in ("upload", "download"):
            points = []
            for m in sizes:
                args = [m, part, inflight] if workload == "upload" else [m, CHUNK_MIB[kind]]
                prepare = ("upload", [m, part, inflight]) if workload == "download" else None
                settle = s.settle if m >= SETTLE_FROM_MIB else 0
                label = f"{workload} {x_label('size', m)} (curve)"
                points.append(Row(kind, workload, args, label, tools, prepare, settle))
            curves.append(Curve("size", kind, workload, stores[kind], points))
    for kind in ("memory", "local"):
        if kind not in stores or not tools:
            continue
        # A directory of the curves' own: the rows' list directory holds the rows' count.
        spec = "memory" if kind == "memory" else f"local:{scratch / 'curves-list'}"
        points = [
            Row(kind, "list", [n], f"list {n:,} (curve)", tools,
                None if kind == "memory" else ("fill_list", [n]))
            for n in counts
        ]
        curves.append(Curve("count", kind, "list", spec, points))
    for kind in ("local", "s3"):
        if kind not in stores or OSX not in s.only:
            continue
        points = [Row(kind, "streams", [n], f"{x_label('streams', n)} at once (curve)", [OSX])
                  for n in streams]
        curves.append(Curve("streams", kind, "streams", stores[kind], points))
    return curves


# --- the budget ------------------------------------------------------------------------------


def runs_per_point(row: Row, s: Settings) -> int:
    return s.curve_rounds * len([t for t in row.tools if t in s.only])


def estimate(curve: Curve, history: list[Cost], row: Row, s: Settings) -> Cost:
    """The cost of `row`, from the points of its curve before it (measured or estimated)."""
    x, runs = row.args[0], runs_per_point(row, s)
    settle = (row.settle or 0) * runs if row.workload in LARGE else 0
    if not history:
        return Cost(x, FIRST_GUESS_S * runs + settle, 0, settle)
    last = history[-1]
    prepared = last.prepared * x / last.x
    if len(history) == 1:
        fixed = last.total - last.variable - last.settle
        total = fixed + last.variable * x / last.x
    else:
        prev = history[-2]
        a, b = prev.total - prev.settle, last.total - last.settle
        total = b + max(0.0, (b - a) / (last.x - prev.x)) * (x - last.x)
    if curve.figure == "streams":
        # More streams slow the probes, but vm_health.exs stops sampling after 10 ms a round.
        total = min(total, runs * (start_up(curve) + health_samples(s) / 100))
    return Cost(x, total + settle, last.variable * x / last.x, settle, prepared)


def start_up(curve: Curve) -> float:
    """The longest a run of the curve took outside its timed part, seconds."""
    runs = [r for p in curve.measured() for r in p.runs.get(OSX, [])]
    return max(((r.wall_micros - r.micros) / 1e6 for r in runs), default=FIRST_GUESS_S)


def skip_the_rest(curves: list[Curve], s: Settings, left: float) -> None:
    """Marks every point not measured as skipped, with its estimate (the later points of a
    curve estimated from the earlier estimates, as if measured)."""
    for curve in curves:
        history = list(curve.costs)
        first = True
        while (row := curve.next_point()) is not None:
            cost = estimate(curve, history, row, s)
            why = f"about {cost.total:,.0f} s"
            if cost.prepared >= 1:
                what = "creating the files" if curve.workload == "list" else "the upload before"
                why += f" ({what} about {cost.prepared:,.0f} s of it)"
            if not curve.costs:
                why += " (a guess: no point of this curve was measured)"
            why += f", {max(left, 0):,.0f} s of the budget left" if first else ", extrapolated"
            curve.skipped[row.args[0]] = Skip(cost, why)
            history.append(cost)
            first = False


def skipped_seconds(curves: list[Curve]) -> float:
    """What the skipped points would have taken, by their estimates."""
    return sum(skip.cost.total for curve in curves for skip in curve.skipped.values())


# --- measuring -------------------------------------------------------------------------------


def measure_point(curve: Curve, row: Row, tools: Tools, s: Settings) -> Cost:
    """Rounds of every tool at one point, as the rows run them (bench.py's run_round)."""
    started = time.monotonic()
    prepare_row(row, tools, s, curve.spec)
    prepared = time.monotonic() - started
    place = curve.points.index(row)
    for r in range(s.curve_rounds):
        run_round(row, tools, s, curve.spec, r, place)
    runs = [run for runs in row.runs.values() for run in runs]
    timed = sum(run.micros for run in runs) / 1e6
    settle = (row.settle or 0) * len(runs) if row.workload in LARGE else 0
    return Cost(row.args[0], time.monotonic() - started, timed + prepared, settle, prepared)


def measure_streams(curve: Curve, row: Row, s: Settings) -> Cost:
    """Rounds of vm_health.exs with N downloads and their samples alone, each its own process."""
    started = time.monotonic()
    n = row.args[0]
    for r in range(s.curve_rounds):
        os.sync()
        try:
            stdout, wall, maxrss, cpu = run_process(
                health_argv(curve.spec, n, "downloads", health_samples(s)), timeout=s.timeout,
                env={"MIX_ENV": "prod"},
            )
            h = parse_health(stdout)
            if "downloads" not in h.streamed or h.base_rss_kib is None or h.bound is None:
                raise Failed("no STREAMED, BASE_RSS or BOUND line")
        except Failed as e:
            row.failures[OSX] = str(e)
            print(f"[{row.name()}] {OSX}: FAILED {e}", flush=True)
            break
        moved, micros = h.streamed["downloads"]
        run = Run(moved, micros, maxrss, h.base_rss_kib, h.bound, wall, process_cpu_micros=cpu)
        row.runs.setdefault(OSX, []).append(run)
        curve.health.setdefault(n, []).append(h)
        p99 = ", ".join(f"{p} {fmt(h.probes[('downloads', p)][1])}" for p in PROBES)
        print(
            f"[{row.name()}] {OSX} round {r + 1}: {h.rate('downloads'):,.0f} MB/s, "
            f"peak RSS {maxrss / 1024:,.0f} MiB, p99 µs {p99}, "
            f"{h.long.get('downloads', 0)} long schedules ({wall / 1e6:.1f} s)",
            flush=True,
        )
    timed = sum(run.micros for run in row.runs.get(OSX, [])) / 1e6
    return Cost(n, time.monotonic() - started, timed, 0)


def run(tools: Tools, s: Settings, stores: dict[str, str], scratch: Path) -> CurveSet:
    """Every point that fits in BENCH_CURVE_BUDGET, cheapest first."""
    curves = build_curves(s, stores, scratch) if s.curve_budget > 0 else []
    budget = s.curve_budget * 60
    started = time.monotonic()
    while True:
        left = budget - (time.monotonic() - started)
        pending = []
        for curve in curves:
            row = curve.next_point()
            if row is not None:
                pending.append((estimate(curve, curve.costs, row, s), curve, row))
        if not pending:
            break
        cost, curve, row = min(pending, key=lambda p: p[0].total)
        if cost.total > left:
            # The cheapest does not fit, so nothing does.
            skip_the_rest(curves, s, left)
            break
        print(f"[curves] {row.name()}: about {cost.total:,.0f} s, {left:,.0f} s left", flush=True)
        if curve.workload == "streams":
            curve.costs.append(measure_streams(curve, row, s))
        else:
            curve.costs.append(measure_point(curve, row, tools, s))
        print(f"[curves] {row.name()}: took {curve.costs[-1].total:,.0f} s", flush=True)
    seconds = time.monotonic() - started
    if curves:
        print(f"[curves] {seconds / 60:.1f} of {s.curve_budget:g} minutes", flush=True)
    return CurveSet(curves, seconds, s.curve_budget)


def failures(cs: CurveSet) -> list[tuple[str, str, str]]:
    return [(row.name(), tool, why) for c in cs.curves for row in c.points
            for tool, why in row.failures.items()]


# --- reading the curves ----------------------------------------------------------------------


def spread_of(values: list[float]) -> tuple[float, float, float] | None:
    """Median, min and max."""
    values = sorted(values)
    return (median(values), values[0], values[-1]) if values else None


def rss(row: Row, tool: str) -> tuple[float, float, float] | None:
    """Peak RSS in MiB: the median run's, and the min and max."""
    if tool in row.failures:
        return None
    return spread_of([r.maxrss_kib / 1024 for r in row.runs.get(tool, [])])


def worst(row: Row, tool: str) -> Run | None:
    """The run that grew most beyond its RSS before the timed part (the bound check's run)."""
    runs = [r for r in row.runs.get(tool, []) if r.bound is not None and r.base_rss_kib]
    if tool in row.failures or not runs:
        return None
    return max(runs, key=growth_mib)


def probe(curve: Curve, n: int, what: str) -> tuple[float, float, float] | None:
    """A VM-health figure over a streams point's runs: a probe's p99 or the long schedules."""
    runs = curve.health.get(n, [])
    if what == "long":
        return spread_of([h.long.get("downloads", 0) for h in runs])
    return spread_of([h.probes[("downloads", what)][1] for h in runs])


def throughput_text(curve: Curve, tool: str, unit: str) -> str | None:
    points = [(p.args[0], p.median(tool)) for p in curve.measured() if p.median(tool)]
    if not points:
        return None
    label = lambda x: x_label(curve.figure, x)  # noqa: E731
    what = "aggregate throughput" if curve.figure == "streams" else "throughput"
    if len(points) == 1:
        return f"{what}: {fmt(points[0][1])} {unit} at {label(points[0][0])}, the only point"
    drops = [(a, b) for a, b in zip(points, points[1:]) if b[1] < (1 - KNEE_DROP) * a[1]]
    if drops:
        (xa, va), (xb, vb) = drops[0]
        text = (f"{what}: **knee at {label(xb)}**, {fmt(vb)} {unit}, {1 - vb / va:.0%} below "
                f"{fmt(va)} at {label(xa)}")
        if len(drops) > 1:
            text += "; falls again at " + ", ".join(label(b[0]) for _, b in drops[1:])
        return text
    values = [v for _, v in points]
    (x0, v0), (xn, vn) = points[0], points[-1]
    if max(values) <= min(values) * (1 + KNEE_DROP):
        return f"{what}: flat, {fmt(min(values))}–{fmt(max(values))} {unit}"
    if vn > v0:
        return (f"{what}: rises from {fmt(v0)} {unit} at {label(x0)} to {fmt(vn)} at "
                f"{label(xn)}, no knee (never more than {KNEE_DROP:.0%} below the point before)")
    return (f"{what}: no knee, {fmt(min(values))}–{fmt(max(values))} {unit}, never more than "
            f"{KNEE_DROP:.0%} below the point before")


def rss_text(curve: Curve, tool: str) -> str | None:
    rows = [p for p in curve.measured() if rss(p, tool)]
    if not rows:
        return None
    label = lambda row: x_label(curve.figure, row.args[0])  # noqa: E731
    bounded = [(row, worst(row, tool)) for row in rows if worst(row, tool)]
    if bounded and len(bounded) == len(rows):
        beyond = [(row, run) for row, run in bounded if not within_bound(run)]
        if beyond:
            row, run = beyond[0]
            return (f"peak RSS: **beyond the bound from {label(row)}**, grew "
                    f"{growth_mib(run):,.0f} MiB against {run.bound / MIB:,.0f} + "
                    f"{BOUND_SLACK // MIB} MiB")
        most = max(bounded, key=lambda b: growth_mib(b[1]))
        return (f"peak RSS: within the documented bound at every point (the most growth "
                f"{growth_mib(most[1]):,.0f} MiB, at {label(most[0])}, against "
                f"{most[1].bound / MIB:,.0f} + {BOUND_SLACK // MIB} MiB)")
    # No bound in bytes: flat, or where it first grew past the first point's by the slack.
    medians = [(row, rss(row, tool)[0]) for row in rows]
    first, last = medians[0][1], medians[-1][1]
    past = next((row for row, m in medians if m > first + BOUND_SLACK / MIB), None)
    if past is None:
        low, high = min(m for _, m in medians), max(m for _, m in medians)
        span = f"{low:,.0f}" if round(low) == round(high) else f"{low:,.0f}–{high:,.0f}"
        return f"peak RSS: flat, {span} MiB"
    return (f"peak RSS: grows from {first:,.0f} MiB at {label(rows[0])} to {last:,.0f} MiB at "
            f"{label(rows[-1])}, **past the first point's by more than "
            f"{BOUND_SLACK // MIB} MiB from {label(past)}**")


def probes_text(curve: Curve) -> str | None:
    ns = [p.args[0] for p in curve.measured() if curve.health.get(p.args[0])]
    if not ns:
        return None
    parts = []
    for what in PROBES:
        a, b = probe(curve, ns[0], what)[0], probe(curve, ns[-1], what)[0]
        if len(ns) == 1:
            parts.append(f"{what} p99 {fmt(a)} µs")
            continue
        parts.append(f"{what} p99 from {fmt(a)} µs at {x_label('streams', ns[0])} to {fmt(b)} "
                     f"at {x_label('streams', ns[-1])}")
    longs = [f"{probe(curve, n, 'long')[0]:g} at {n}" for n in ns]
    return "; ".join(parts) + "; long schedules " + ", ".join(longs)


# --- the figures -----------------------------------------------------------------------------


def errorbar(ax, xs, triples, **style) -> None:
    meds = [t[0] for t in triples]
    err = [[t[0] - t[1] for t in triples], [t[2] - t[0] for t in triples]]
    ax.errorbar(xs, meds, yerr=err, capsize=3, markersize=4, linewidth=1.2, **style)


def axes_for(ax, figure: str, xs: list[int], ylabel: str, values: list[float],
             log: bool | None = None) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:,}" if figure == "streams" else x_label(figure, x) for x in xs])
    ax.minorticks_off()
    ax.set_xlim(xs[0] / 1.5, xs[-1] * 1.5)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", linewidth=0.3)
    # A log scale only where the values span more than is easy to read on a linear one.
    if log is None:
        log = bool(values) and min(values) > 0 and max(values) / min(values) > 20
    if log:
        ax.set_yscale("log")
        # Plain figures on the ticks, not powers of ten, and enough of them to read a value.
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0, top=max(values, default=1) * 1.1)


def plot(cs: CurveSet, folder: Path, health: list) -> list[tuple[str, Path]]:
    """The PNGs, one per figure (and per store for the object size), as (figure, path)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out = []
    groups = []
    for kind in ("local", "s3"):
        curves = [c for c in cs.curves if c.figure == "size" and c.store == kind]
        groups.append(("size", f"curves-size-{kind}.png", curves))
    for figure in ("count", "streams"):
        groups.append((figure, f"curves-{figure}.png",
                       [c for c in cs.curves if c.figure == figure]))
    for figure, name, curves in groups:
        if not any(c.measured() for c in curves):
            continue
        xs = sorted({p.args[0] for c in curves for p in c.points})
        streams = figure == "streams"
        fig, axes = plt.subplots(2 if streams else 1, 2, figsize=(12, 8 if streams else 4.6),
                                 constrained_layout=True)
        axes = list(axes.flat)
        seen = {i: [] for i in range(len(axes))}
        for curve in curves:
            for tool in [t for t in (OSX, RAW) if any(p.runs.get(t) for p in curve.points)]:
                rows = [p for p in curve.measured() if p.spread(tool) and rss(p, tool)]
                if not rows:
                    continue
                px = [p.args[0] for p in rows]
                if streams:
                    color, style, text = STORE_COLORS[curve.store], "-", curve.store
                elif figure == "size":
                    up = curve.workload == "upload"
                    color, style, text = TOOL_COLORS[tool], "-" if up else "--", curve.workload
                    text = f"{tool}, {text}"
                else:
                    mem = curve.store == "memory"
                    color, style, text = TOOL_COLORS[tool], "-" if mem else "--", curve.store
                    text = f"{tool}, {text}"
                marker = "o" if style == "-" else "s"
                thr = [(p.median(tool), *p.spread(tool)) for p in rows]
                errorbar(axes[0], px, thr, color=color, linestyle=style, marker=marker,
                         label=text)
                seen[0] += [v for t in thr for v in t]
                mem_mib = [rss(p, tool) for p in rows]
                errorbar(axes[1], px, mem_mib, color=color, linestyle=style, marker=marker)
                seen[1] += [v for t in mem_mib for v in t]
                bounds = [(p.args[0], worst(p, tool)) for p in rows if worst(p, tool)]
                if bounds:
                    # Where the documented bound puts the peak: the RSS before, plus the bound
                    # and the slack the check allows.
                    by = [(r.base_rss_kib * 1024 + r.bound + BOUND_SLACK) / MIB for _, r in bounds]
                    axes[1].plot([x for x, _ in bounds], by, color=color,
                                 linestyle=":" if style == "-" else "-.", linewidth=1,
                                 marker="_" if len(bounds) == 1 else None,
                                 label=f"bound, {text}")
                    seen[1] += by
                if streams:
                    for i, what in ((2, "file_read"), (2, "genserver_call"), (3, "long")):
                        vals = [probe(curve, p.args[0], what) for p in rows]
                        errorbar(axes[i], px, vals, color=color,
                                 linestyle="--" if what == "genserver_call" else "-",
                                 marker="s" if what == "genserver_call" else "o",
                                 label=f"{curve.store}, {what}" if i == 2 else None)
                        seen[i] += [v for t in vals for v in t]
                    idle = next((h for h in health if h.store == curve.store
                                 and h.probe == "file_read"), None)
                    if idle:
                        axes[2].axhline(idle.idle_p99, color=color, linestyle=":", linewidth=1,
                                        label=f"{curve.store}, idle VM file_read p99")
                        seen[2].append(idle.idle_p99)
        unit = "objects/s" if figure == "count" else "MB/s"
        xname = {"size": "object size (log scale)", "count": "objects listed (log scale)",
                 "streams": "downloads at once, one VM (log scale)"}[figure]
        axes_for(axes[0], figure, xs, f"{'aggregate ' if streams else ''}{unit}, median "
                 "(bars: min–max)", seen[0])
        axes_for(axes[1], figure, xs, "peak RSS of the process, MiB", seen[1])
        axes[0].set_title("Throughput")
        bounded = any(worst(p, OSX) for c in curves for p in c.measured())
        axes[1].set_title("Peak RSS" + (" (dotted: documented bound)" if bounded else ""))
        if streams:
            axes_for(axes[2], figure, xs, "p99 latency, µs", seen[2], log=True)
            axes_for(axes[3], figure, xs, "long schedules (> 5 ms) while sampled", seen[3])
            axes[3].yaxis.set_major_locator(MaxNLocator(integer=True))
            axes[2].set_title("VM-health probes, p99")
            axes[3].set_title("Long schedules")
            axes[2].legend(fontsize=7)
        for ax in axes:
            ax.set_xlabel(xname)
        skipped = [f"{c.workload if figure == 'size' else c.store} {x_label(figure, x)}"
                   for c in curves for x in c.skipped]
        title = TITLES[figure] + (f" · {curves[0].store}" if figure == "size" else "")
        if skipped:
            title += "   (not measured, out of budget: " + ", ".join(skipped) + ")"
        fig.suptitle(textwrap.fill(title, 120), fontsize=10)
        handles, labels = axes[0].get_legend_handles_labels()
        h1, l1 = axes[1].get_legend_handles_labels()
        axes[0].legend(handles, labels, fontsize=7)
        if h1:
            axes[1].legend(h1, l1, fontsize=7)
        path = folder / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out.append((figure, path))
    return out


# --- the README section ----------------------------------------------------------------------


def report(cs: CurveSet, folder: Path, health: list, s: Settings) -> list[str]:
    """Writes the PNGs into folder; returns the README section."""
    lines = ["## Cost curves", ""]
    if not cs.curves:
        return lines + ["Left out of this run (BENCH_CURVE_BUDGET=0, or no store or tool to "
                        "draw them with).", ""]
    pngs = plot(cs, folder, health)
    lines += [
        "How the cost moves with what grows in practice: the size of the object, the number of "
        "objects listed, the number of downloads at once. Every run is a fresh OS process, as "
        f"in the rows of `make bench`; each point is the **median of {s.curve_rounds} runs** per tool, "
        "the tools taking turns, each opening as many rounds, the first at the point's place "
        "in its curve (error bars: the slowest and the fastest run; peak RSS "
        "likewise). A **knee** is a point whose median throughput is more than "
        f"{KNEE_DROP:.0%} below the previous point's, or where ObjectStoreX's process grew "
        "beyond its documented bound (the `BOUND` its program prints, plus "
        f"{BOUND_SLACK // MIB} MiB, as in the memory table of `make bench`); the sentences under each "
        "figure are computed from its figures. "
        f"The curves took {cs.seconds / 60:.1f} of their {cs.budget:g} minutes "
        "(`BENCH_CURVE_BUDGET`): the points went cheapest first, each started only if the "
        "estimate from the points of its curve before it fitted in what was left.",
        "",
    ]
    every = ROOT / "bench/curves/README.md"
    if not CURVES_ONLY and every.exists():
        lines += [
            f"Every point, the largest included, measured by `make bench-curves`: "
            f"[{os.path.relpath(every, folder)}]({os.path.relpath(every, folder)}).",
            "",
        ]
    settle = (f" Runs of {SETTLE_FROM_MIB} MiB and more begin their timed part {s.settle:g} s "
              "after their `sync`, as the rows' do." if s.settle else "")
    about = {
        "size": "One object of each size uploaded by a fresh process, and downloaded (after the "
        "raw program uploaded it, untimed), with the rows' knobs: on local 64 MiB parts, 2 in "
        "flight, 2 MiB chunks; on S3 8 MiB parts, 8 in flight, 2 MiB chunks. The first "
        "requests and parts weigh on the smallest objects; past them a streaming transfer "
        "should keep its rate, and its peak RSS should not move with the size at all: the "
        "dotted lines are where ObjectStoreX's documented bound puts it (the RSS before the "
        f"timed part, plus `BOUND`, plus {BOUND_SLACK // MIB} MiB)." + settle,
        "count": "A listing of N empty objects under one prefix, through "
        "`ObjectStoreX.Stream.list_stream` (pages of 1,000, two read ahead) and through the "
        "crate's `list`. On local they are files in one directory, which the raw program's "
        "`fill_list` writes before the point, untimed (into the same directory each time, "
        "which grows); on memory each process first fills its own store, untimed, so its peak RSS "
        "holds the objects themselves, whatever the listing costs. A streaming listing should "
        "keep its rate as the count grows and, on local, its memory flat: `list_stream` "
        "documents that its memory does not grow with the number of objects.",
        "streams": f"N processes in one VM each downloading the same {HEALTH_OBJECT_MIB} MiB "
        "object again and again while the VM-health probes are sampled (`bench/vm_health.exs "
        f"STORE N downloads {health_samples(s)}`: the 64-download run of the VM-health table with "
        "N as its argument and the downloads' samples alone, so that the process's peak RSS is "
        f"theirs, {health_samples(s):,} rounds of the probes, or what "
        f"{health_samples(s) / 100:g} s allow). "
        "Aggregate throughput is what all streams moved while the probes were sampled; the p99 "
        "latency of a small `File.read!` and of a `GenServer.call`, and the long schedules "
        "(a process or port on a scheduler for more than 5 ms), say how the rest of the VM "
        "fares" + (" (dotted: the idle VM's file_read p99 from the VM-health table)" if health
                   else "") + ". The bound grows "
        "with N: `(prefetch + 1) * chunk_size` per stream, 16 x 2 MiB on local plus the 64 MiB "
        "pool of local read buffers, 3 x 2 MiB on S3.",
    }
    for figure in ("size", "count", "streams"):
        curves = [c for c in cs.curves if c.figure == figure]
        if not curves:
            continue
        lines += [f"### {TITLES[figure]}", ""]
        for fig_name, path in pngs:
            if fig_name == figure:
                rel = os.path.relpath(path, folder)
                lines += [f"![{TITLES[figure]}: throughput and peak RSS]({rel})", ""]
        lines += [about[figure], ""]
        lines += table(figure, curves, s) + [""]
        lines += ["Knees, read from the figures:", ""]
        for curve in curves:
            for tool in [t for t in (OSX, RAW) if t in curve.points[0].tools]:
                unit = "objects/s" if figure == "count" else "MB/s"
                parts = [throughput_text(curve, tool, unit), rss_text(curve, tool)]
                if figure == "streams":
                    parts.append(probes_text(curve))
                parts = [p for p in parts if p]
                if parts:
                    lines.append(f"- {curve.name()}, {tool}: " + "; ".join(parts) + ".")
                elif not curve.skipped:
                    lines.append(f"- {curve.name()}, {tool}: not measured.")
        lines.append("")
    skipped = [(c, x, skip.why) for c in cs.curves for x, skip in c.skipped.items()]
    if skipped:
        lines += [
            "### Points left out",
            "",
            f"Not measured: they did not fit in the {cs.budget:g} minutes. The estimates come "
            "from the points measured before them; all of these would take about "
            f"{skipped_seconds(cs.curves) / 60:.1f} more minutes.",
            "",
        ]
        lines += [f"- {c.name()} {x_label(c.figure, x)}: {why}" for c, x, why in skipped]
        lines.append("")
    return lines


def table(figure: str, curves: list[Curve], s: Settings) -> list[str]:
    unit = "objects/s" if figure == "count" else "MB/s"
    xname = {"size": "size", "count": "objects", "streams": "downloads at once"}[figure]
    if figure == "streams":
        lines = [
            f"| store | {xname} | aggregate MB/s | peak RSS (MiB) | growth / bound (MiB) "
            "| file_read p99 (µs) | genserver_call p99 (µs) | long schedules |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in curves:
            for p in c.points:
                n = p.args[0]
                if n in c.skipped:
                    continue
                m, g = rss(p, OSX), worst(p, OSX)
                cells = [triple_cell(probe(c, n, what)) for what in PROBES]
                cells.append(triple_cell(probe(c, n, "long"), lambda v: f"{v:g}"))
                lines.append(
                    f"| {c.store} | {n} | {cell(p, OSX)} | {mib_cell(m)} | {growth_cell(g)} | "
                    + " | ".join(cells) + " |"
                )
        return lines
    tools = [t for t in (OSX, RAW) if t in s.only]
    head = f"| work | {xname} | " + " | ".join(f"{t} {unit}" for t in tools)
    head += " | " + " | ".join(f"{t} peak RSS (MiB)" for t in tools)
    head += " | ObjectStoreX growth / bound (MiB) |" if figure == "size" else " |"
    cols = 2 + 2 * len(tools) + (1 if figure == "size" else 0)
    lines = [head, "|" + "---|" * cols]
    for c in curves:
        for p in c.points:
            x = p.args[0]
            if x in c.skipped:
                continue
            cells = [cell(p, t) for t in tools] + [mib_cell(rss(p, t)) for t in tools]
            if figure == "size":
                cells.append(growth_cell(worst(p, OSX)))
            work = c.name() if figure == "size" else c.store
            lines.append(f"| {work} | {x_label(figure, x)} | " + " | ".join(cells) + " |")
    return lines


def mib_cell(triple) -> str:
    return triple_cell(triple, lambda v: f"{v:,.0f}")


def triple_cell(triple, show=fmt) -> str:
    """The median, and the min-max in brackets unless all runs agree."""
    if triple is None:
        return "-"
    m, lo, hi = map(show, triple)
    return m if lo == hi else f"{m} ({lo}–{hi})"


def growth_cell(run: Run | None) -> str:
    if run is None:
        return "-"
    verdict = "" if within_bound(run) else " **beyond**"
    return f"{growth_mib(run):,.0f} / {run.bound / MIB:,.0f}{verdict}"
