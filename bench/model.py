"""The "Past this machine" section of bench/README.md: what one node of N cores should move, and
where a sync run's coordinator saturates, derived from this run's own measurements.

Every input is a figure the run measured (the client's CPU per GiB on the S3 byte rows, its CPU
per request on the S3 many-small-object rows, the sync engine's unchanged re-sync rate); every
output is arithmetic on those, and the text says which is which. Nothing here is hard-coded but
the node sizes the table shows and the network links it compares with, which are named as
assumptions.
"""

from __future__ import annotations

import json
from pathlib import Path

MIB = 1024 * 1024
GIB = 1024 * MIB
GB = 1e9

# Node sizes the table derives figures for, and common network links (bytes/s): assumptions,
# not measurements.
CORES = [2, 8, 32, 64]
LINKS = [("10 Gbit/s", 10e9 / 8), ("25 Gbit/s", 25e9 / 8), ("100 Gbit/s", 100e9 / 8)]


def _find(rows, store: str, workload: str, size: int | None = None, flagged: bool = False):
    """The first row of that work, run with the VM's default flags or, if flagged, not."""
    for row in rows:
        if row.store == store and row.workload == workload and (
            size is None or row.args[1] == size
        ) and bool(row.vm_flags) == flagged:
            return row
    return None


def sync_coordinator_rate(runs_jsonl: Path, objects: int) -> tuple[float, str, int] | None:
    """(objects/s, variant, runs) of the sync engine's own unchanged re-sync, local → S3, on
    one node: the coordinator's whole job when nothing is copied. From the sync bench's
    runs.jsonl (bench/sync_bench.py); the faster listing variant's median."""
    if not runs_jsonl.exists():
        return None
    by_tool: dict[str, list[float]] = {}
    for line in runs_jsonl.read_text().splitlines():
        try:
            run = json.loads(line)
        except ValueError:
            continue
        if (run.get("phase") == "unchanged" and run.get("direction") == "up"
                and str(run.get("tool", "")).startswith("ObjectStoreX") and run.get("inner")):
            by_tool.setdefault(run["tool"], []).append(objects / run["inner"])
    from bench import median

    rated = [(median(sorted(rates)), tool, len(rates)) for tool, rates in by_tool.items()]
    return max(rated) if rated else None


def section(rows, tool: str, sync_runs: Path | None = None, sync_objects: int = 0) -> list[str]:
    """The README lines, or a line saying which measurement is missing."""
    # The report's own helpers: bench.py imports this module, and runs as `bench`.
    from bench import fmt

    up, down = _find(rows, "s3", "upload"), _find(rows, "s3", "download")
    cpu_up = up.cpu_per_gib(tool) if up else None
    cpu_down = down.cpu_per_gib(tool) if down else None
    put, get = _find(rows, "s3", "put_many", 1024), _find(rows, "s3", "get_many", 1024)
    put_us = put.cpu_per_op_us(tool) if put else None
    get_us = get.cpu_per_op_us(tool) if get else None
    lines = ["## Past this machine (a model)", ""]
    if None in (cpu_up, cpu_down, put_us, get_us):
        return lines + [
            "Not derived: this run lacks one of the S3 upload, download, or 1 KiB put/get rows "
            "it is built from.",
            "",
        ]
    if 0 in (cpu_up, cpu_down, put_us, get_us):
        # A smoke run's objects are moved within one 10 ms tick of the CPU clock.
        return lines + [
            "Not derived: one of the S3 upload, download, or 1 KiB put/get rows it is built "
            "from measured no CPU time (the clock counts 10 ms ticks; this run was too small).",
            "",
        ]
    lines += [
        "This machine's 2 cores are shared with the S3 server, so its throughput says little "
        "about a real node. What carries over is the client's own CPU cost, which the run "
        "measured (user + system time of the client process, all its threads, timed part, "
        "median of the rounds):",
        "",
        "| measured (this run) | ObjectStoreX |",
        "|---|---|",
        f"| CPU per GiB uploaded to S3 (s3 · {up.label}) | {fmt(cpu_up)} s |",
        f"| CPU per GiB downloaded from S3 (s3 · {down.label}) | {fmt(cpu_down)} s |",
        f"| CPU per PUT of 1 KiB (`Stream.put_many/3`) | {fmt(put_us)} µs |",
        f"| CPU per GET of 1 KiB (`Stream.get_many/3`) | {fmt(get_us)} µs |",
        "",
        "**Derived** (arithmetic on the figures above): if the client's cost per byte and per "
        "request stays what it is here and every core can be given to it, a node of N cores "
        "moves N / (CPU per GiB) GiB/s and makes N / (CPU per request) requests per second:",
        "",
        "| cores | download GB/s | upload GB/s | 1 KiB GETs/s | 1 KiB PUTs/s |",
        "|---|---|---|---|---|",
    ]
    for n in CORES:
        lines.append(
            f"| {n} | {fmt(n / cpu_down * GIB / GB)} | {fmt(n / cpu_up * GIB / GB)} "
            f"| {fmt(n / get_us * 1e6)} | {fmt(n / put_us * 1e6)} |"
        )
    quiet = [
        (verb, row.cpu_per_op_us(tool))
        for verb, row in [
            ("GET", _find(rows, "s3", "get_many", 1024, flagged=True)),
            ("PUT", _find(rows, "s3", "put_many", 1024, flagged=True)),
        ]
        if row and row.cpu_per_op_us(tool)
    ]
    if quiet:
        cost = " and ".join(f"{fmt(us)} µs per {verb}" for verb, us in quiet)
        rate = " and ".join(f"{fmt(1e6 / us)} {verb}s/s" for verb, us in quiet)
        lines += [
            "",
            "With the VM's schedulers not busy waiting (the 1 KiB rows marked \"busy wait off\" "
            f"above), a request costs {cost} (measured): {rate} a core (derived).",
        ]
    per_core_down = GIB / cpu_down
    knees = ", ".join(f"{name} at {fmt(rate / per_core_down)} cores" for name, rate in LINKS)
    lines += [
        "",
        "Where that stops (derived, with assumed links): a node's network link caps the bytes "
        f"once enough cores feed it — downloads fill {knees}. Past that, more cores move no "
        "more; more nodes do. Requests scale with cores until the store's own request limit "
        "for a prefix (a property of the store, not measured here), so a many-small-object "
        "job wants its keys spread across prefixes as much as it wants cores. The chunk and "
        "part sizes set the memory per stream (see the bounds above), not the CPU per byte, "
        "so a node's memory grows with its streams in flight, not with its speed.",
        "",
    ]
    coord = sync_coordinator_rate(sync_runs, sync_objects) if sync_runs else None
    if coord:
        rate, variant, n = coord
        objects = sync_objects
        lines += [
            "**The sync engine's coordinator** lists both sides, merges them, classifies each "
            "object and books every result, on one node. Measured: an unchanged re-sync of "
            f"{objects:,} objects (local → S3, the coordinator's whole job when nothing is "
            f"copied) runs at {fmt(rate)} objects/s ({variant}, median of {n}, the sync "
            "engine's own measure without VM start-up). Derived: workers on k "
            "nodes, each copying o objects/s, saturate it when k·o reaches that rate; past it, "
            "another node adds only coordination cost. A node that copies 1,000 objects/s "
            f"saturates it at about {fmt(rate / 1000)} nodes. Bytes do not pass through the "
            "coordinator, so large objects scale with the nodes' links, not with it.",
            "",
        ]
    return lines
