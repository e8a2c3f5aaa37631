#!/usr/bin/env python3
"""The driver of `make bench-sync` (started by bench/sync.sh, which sets SYNC_S3_* and starts
the server): ObjectStoreX.Sync, `rclone copy` and `s5cmd sync`, each a fresh OS process per
run, local -> S3 and S3 -> local, a fresh copy and then the same again with nothing changed;
then ObjectStoreX.Sync with its workers on 1, 2 and 3 nodes (`:peer` nodes on 127.0.0.1).

ObjectStoreX.Sync runs as a user runs it from a shell: the launcher `mix objectstorex.launcher`
writes (bench/sync.sh writes it to _build/prod/bin/objectstorex, or SYNC_LAUNCHER names one),
`objectstorex sync ...`, the `mix objectstorex.sync` task's code without Mix's start-up. The
nodes part runs bench/sync_bench.exs (compiled), which starts the `:peer` nodes. The start-up
part times what a run costs before any work: a bare `erl`, the launcher and `mix` on an empty
directory, `elixir -e`, and rclone on an empty directory.

Settings (environment): SYNC_SMALL (number of small objects, 10000), SYNC_SMALL_KIB (16),
SYNC_BIG (8), SYNC_BIG_MIB (64), SYNC_ROUNDS (3), SYNC_NODE_ROUNDS (3), SYNC_CONCURRENCY
(objects in flight, 32, the same for every tool), SYNC_ONLY (comma-separated parts to run:
contenders,startup,nodes,listing), SYNC_STARTUP_ROUNDS (7). Writes SYNC_OUT/results.md and SYNC_OUT/runs.jsonl.

Each contender's figure is the whole command's wall time (start-up included, the same for
every tool), its CPU time (user + system, GNU time: on a shared machine it moves less than the
wall time) and its peak RSS the process's ru_maxrss. ObjectStoreX's own
measure of the run (no VM start-up: the duration its summary line prints) is shown beside it.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENDPOINT = os.environ["SYNC_S3_ENDPOINT"]
BUCKET = os.environ["SYNC_S3_BUCKET"]
S3_DATA = Path(os.environ["SYNC_S3_DATA"])
OUT = Path(os.environ["SYNC_OUT"])
S5CMD = os.environ["SYNC_S5CMD"]
WORK = OUT / "work"
SRC = WORK / "src"
DST = WORK / "dst"

SMALL = int(os.environ.get("SYNC_SMALL", "10000"))
SMALL_KIB = int(os.environ.get("SYNC_SMALL_KIB", "16"))
BIG = int(os.environ.get("SYNC_BIG", "8"))
BIG_MIB = int(os.environ.get("SYNC_BIG_MIB", "64"))
ROUNDS = int(os.environ.get("SYNC_ROUNDS", "3"))
NODE_ROUNDS = int(os.environ.get("SYNC_NODE_ROUNDS", "3"))
CONC = int(os.environ.get("SYNC_CONCURRENCY", "32"))
STARTUP_ROUNDS = int(os.environ.get("SYNC_STARTUP_ROUNDS", "7"))
ONLY = set(os.environ.get("SYNC_ONLY", "contenders,startup,nodes,listing").split(","))
PART_MIB = 8
PART_CONC = 8
OBJECTS = SMALL + BIG
BYTES = SMALL * SMALL_KIB * 1024 + BIG * BIG_MIB * 1024 * 1024

RCLONE_ENV = {
    "RCLONE_CONFIG_S3_TYPE": "s3",
    "RCLONE_CONFIG_S3_PROVIDER": "Other",
    "RCLONE_CONFIG_S3_ENV_AUTH": "false",
    "RCLONE_CONFIG_S3_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
    "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
    "RCLONE_CONFIG_S3_ENDPOINT": ENDPOINT,
    "RCLONE_CONFIG_S3_REGION": "us-east-1",
}
# The same knobs for every tool: CONC objects in flight, 8 MiB parts, 8 parts in flight per
# object. rclone compares by size and the server's date (--update --use-server-modtime), as
# Sync and s5cmd do, rather than reading its own mtime metadata with a HEAD per object; and
# computes no MD5 (Sync checks the byte count only, as s5cmd does).
RCLONE_COMMON = [
    "rclone", "copy", "--transfers", str(CONC), "--checkers", str(CONC),
    "--update", "--use-server-modtime", "--s3-no-check-bucket", "-q",
]
RCLONE_UP = ["--s3-chunk-size", f"{PART_MIB}M", "--s3-upload-concurrency", str(PART_CONC),
             "--s3-upload-cutoff", f"{PART_MIB}M", "--s3-disable-checksum"]
RCLONE_DOWN = ["--multi-thread-streams", str(PART_CONC), "--multi-thread-cutoff",
               f"{PART_MIB}M", "--ignore-checksum"]
S5CMD_COMMON = [S5CMD, "--endpoint-url", ENDPOINT, "--log", "error", "--numworkers", str(CONC),
                "sync", "--concurrency", str(PART_CONC), "--part-size", str(PART_MIB)]
# ObjectStoreX.Sync as a user runs it: the launcher of `mix objectstorex.launcher` (the task's
# parsing, stores from the environment and summary line, without Mix's start-up).
LAUNCHER = os.environ.get("SYNC_LAUNCHER", str(ROOT / "_build/prod/bin/objectstorex"))
OSX_CLI = [LAUNCHER, "sync", "--no-progress", "--concurrency", str(CONC),
           "--part-size", f"{PART_MIB}MiB", "--part-concurrency", str(PART_CONC)]
OSX_CLI_ENV = {"AWS_ENDPOINT_URL": ENDPOINT, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}
# bench/sync_bench.exs (the nodes part, which starts :peer nodes) compiled once (compile_osx),
# as a user's code is compiled before it runs: each run is then the VM's start and the run,
# not a compilation too (about 0.3 s here).
OSX_EBIN = OUT / "ebin"
OSX = ["elixir", "-pa", str(ROOT / "_build/prod/lib/objectstorex/ebin"), "-pa", str(OSX_EBIN),
       "-e", "SyncBench.main(System.argv())"]
OSX_ENV = {"SYNC_PART_MIB": str(PART_MIB), "SYNC_PART_CONCURRENCY": str(PART_CONC)}
OSX_TREE = "ObjectStoreX.Sync, listing: :tree"
S3_SPEC = f"s3:{ENDPOINT}:{BUCKET}"


def command(tool, direction):
    if direction == "up":
        src, dst = SRC, f"{BUCKET}/up"
        return {
            "ObjectStoreX.Sync": OSX_CLI + [str(src), f"s3://{dst}"],
            OSX_TREE: OSX_CLI + ["--listing", "tree", str(src), f"s3://{dst}"],
            # The trailing "/": else rclone first HEADs the prefix to see whether it is a file,
            # which s3s-fs answers, once the prefix exists as its directory, with a 500 that
            # rclone retries for a minute and a half.
            "rclone copy": RCLONE_COMMON + RCLONE_UP + [str(src), f"s3:{dst}/"],
            "s5cmd sync": S5CMD_COMMON + [f"{src}/", f"s3://{dst}/"],
        }[tool]
    src = f"{BUCKET}/src"
    return {
        "ObjectStoreX.Sync": OSX_CLI + [f"s3://{src}", str(DST)],
        OSX_TREE: OSX_CLI + ["--listing", "tree", f"s3://{src}", str(DST)],
        "rclone copy": RCLONE_COMMON + RCLONE_DOWN + [f"s3:{src}/", str(DST)],
        "s5cmd sync": S5CMD_COMMON + [f"s3://{src}/*", f"{DST}/"],
    }[tool]


TOOLS = ["ObjectStoreX.Sync", OSX_TREE, "rclone copy", "s5cmd sync"]
LOG = None


def log(msg):
    print(f"==> bench-sync: {msg}", file=sys.stderr, flush=True)


def run(cmd, extra_env=None):
    """Runs cmd under GNU time: (wall seconds, peak RSS MiB, stdout, CPU seconds)."""
    env = dict(os.environ, **RCLONE_ENV, **(extra_env or {}))
    # The server is plain HTTP on loopback; rclone refuses to start with a CA bundle set here.
    env.pop("AWS_CA_BUNDLE", None)
    tfile = OUT / "time.txt"
    subprocess.run(["sync"], check=True)
    t0 = time.monotonic()
    errors = server_errors()
    p = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", str(tfile)] + cmd, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    if server_errors() != errors:
        raise SystemExit(f"the server logged errors during: {' '.join(cmd)} (see {OUT}/s3s-fs.log)")
    rss_kib, user, system = tfile.read_text().split()[-3:]
    return wall, int(rss_kib) / 1024, p.stdout, float(user) + float(system)


def server_errors():
    with open(OUT / "s3s-fs.log", "rb") as f:
        return f.read().count(b" ERROR ")


def tree_stats(d):
    n = b = 0
    for root, _dirs, files in os.walk(d):
        for f in files:
            n += 1
            b += os.path.getsize(os.path.join(root, f))
    return n, b


def check(direction):
    d = S3_DATA / BUCKET / "up" if direction == "up" else DST
    got = tree_stats(d)
    if got != (OBJECTS, BYTES):
        raise SystemExit(f"{direction}: {d} holds {got}, expected {(OBJECTS, BYTES)}")


def reset(direction):
    d = S3_DATA / BUCKET / "up" if direction == "up" else DST
    shutil.rmtree(d, ignore_errors=True)


def make_source():
    log(f"writing the source: {SMALL} x {SMALL_KIB} KiB and {BIG} x {BIG_MIB} MiB in {SRC}")
    shutil.rmtree(WORK, ignore_errors=True)
    old = time.time() - 3600
    for i in range(SMALL):
        p = SRC / "small" / f"d{i // 1000:02d}" / f"f{i:05d}"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(SMALL_KIB * 1024))
        os.utime(p, (old, old))
    (SRC / "big").mkdir(parents=True)
    block = os.urandom(1 << 20)
    for i in range(BIG):
        p = SRC / "big" / f"b{i}"
        with open(p, "wb") as f:
            for j in range(BIG_MIB):
                # Each MiB differs from the others.
                f.write(j.to_bytes(8, "little") + i.to_bytes(8, "little") + block[16:])
        os.utime(p, (old, old))
    # The S3 -> local source, written untimed by s5cmd.
    run([S5CMD, "--endpoint-url", ENDPOINT, "--log", "error", "--numworkers", str(CONC),
         "cp", f"{SRC}/", f"s3://{BUCKET}/src/"])
    got = tree_stats(S3_DATA / BUCKET / "src")
    if got != (OBJECTS, BYTES):
        raise SystemExit(f"the S3 source holds {got}, expected {(OBJECTS, BYTES)}")


def summary_seconds(out, phase):
    """The run's own duration from the sync task's summary line, whose counts are checked."""
    m = re.search(r"^synced .*: listed (\d+), copied (\d+) .*, skipped (\d+), deleted 0, "
                  r"failed 0 in ([\d.]+) s", out, re.M)
    if not m:
        raise SystemExit(f"no summary line in: {out[-2000:]}")
    listed, copied, skipped = int(m[1]), int(m[2]), int(m[3])
    want = (OBJECTS, OBJECTS, 0) if phase == "fresh" else (OBJECTS, 0, OBJECTS)
    if (listed, copied, skipped) != want:
        raise SystemExit(f"{phase}: listed/copied/skipped {(listed, copied, skipped)}, "
                         f"expected {want}")
    return float(m[4])


STARTUP = ["bare erl (halt at once)", "objectstorex sync (launcher), empty directory",
           "elixir -e ':ok'", "mix objectstorex.sync, empty directory",
           "rclone copy, empty directory"]


def startup_command(name):
    empty, empty_dst = WORK / "empty", WORK / "empty-dst"
    return {
        STARTUP[0]: ["erl", "-noshell", "-eval", "halt()."],
        STARTUP[1]: [LAUNCHER, "sync", "--no-progress", str(empty), str(empty_dst)],
        STARTUP[2]: ["elixir", "-e", ":ok"],
        STARTUP[3]: ["env", "MIX_ENV=prod", "mix", "objectstorex.sync", "--no-progress",
                     str(empty), str(empty_dst)],
        STARTUP[4]: ["rclone", "copy", "-q", str(empty), str(empty_dst)],
    }[name]


def startup(results):
    """What a run costs before any work, each command in turn, STARTUP_ROUNDS times."""
    (WORK / "empty").mkdir(parents=True, exist_ok=True)
    for r in range(STARTUP_ROUNDS):
        for name in STARTUP[r % len(STARTUP):] + STARTUP[:r % len(STARTUP)]:
            wall, rss, _out, cpu = run(startup_command(name))
            row = {"round": r, "startup": name, "wall": wall, "cpu": cpu, "rss_mib": rss,
                   "load": os.getloadavg()[0]}
            record(row)
            results.append(row)
        log(f"start-up round {r + 1} done")


def last_json(out):
    # A peer node may print to the same standard output: the report is the last JSON line.
    return json.loads([x for x in out.splitlines() if x.startswith('{"')][-1])


def record(row):
    LOG.write(json.dumps(row) + "\n")
    LOG.flush()


def contenders(results):
    for r in range(ROUNDS):
        order = TOOLS[r % len(TOOLS):] + TOOLS[:r % len(TOOLS)]
        for direction in ["up", "down"]:
            for tool in order:
                reset(direction)
                for phase in ["fresh", "unchanged"]:
                    osx = tool.startswith("ObjectStoreX")
                    wall, rss, out, cpu = run(command(tool, direction),
                                              OSX_CLI_ENV if osx else None)
                    check(direction)
                    inner = summary_seconds(out, phase) if osx else None
                    row = {"round": r, "direction": direction, "phase": phase, "tool": tool,
                           "wall": wall, "cpu": cpu, "rss_mib": rss, "inner": inner,
                           "load": os.getloadavg()[0]}
                    record(row)
                    results.append(row)
                    log(f"round {r + 1}: {direction} {phase} {tool}: {wall:.2f} s, CPU {cpu:.2f} s"
                        + (f" (run {inner:.2f} s)" if inner else "") + f", {rss:.0f} MiB")


def nodes(results):
    for r in range(NODE_ROUNDS):
        order = [1, 2, 3][r % 3:] + [1, 2, 3][:r % 3]
        for k in order:
            reset("up")
            for phase in ["fresh", "unchanged"]:
                # The same objects in flight in all (per node: CONC / k, rounded up).
                per_node = -(-CONC // k)
                extra = OSX_ENV | {"SYNC_CONCURRENCY": str(per_node)}
                wall, rss, out, _cpu = run(OSX + [f"local:{SRC}", f"{S3_SPEC}/up", str(k)], extra)
                check("up")
                rep = last_json(out)
                row = {"round": r, "nodes": k, "phase": phase, "wall": wall, "rss_mib": rss,
                       "inner": rep["run_us"] / 1e6, "per_node": rep["nodes"],
                       "per_node_conc": per_node, "load": os.getloadavg()[0]}
                record(row)
                results.append(row)
                log(f"round {r + 1}: {k} node(s) {phase}: {wall:.2f} s (run "
                    f"{row['inner']:.2f} s), " + ", ".join(
                        f"{n['copied']['objects'] + n['skipped']['objects']} obj "
                        f"{n['copied']['bytes'] / 1e6:.0f} MB {n['vm_hwm_kib'] / 1024:.0f} MiB"
                        for n in rep["nodes"]))


def listing(results):
    """The coordinator's listing rate, each side alone (bench/sync_listing.exs)."""
    cmd = ["elixir", "-pa", str(ROOT / "_build/prod/lib/objectstorex/ebin"),
           str(ROOT / "bench/sync_listing.exs"), str(SRC), ENDPOINT, BUCKET, "src"]
    for r in range(NODE_ROUNDS):
        _wall, _rss, out, _cpu = run(cmd)
        rep = last_json(out)
        row = {"round": r, "listing": rep, "load": os.getloadavg()[0]}
        record(row)
        results.append(row)
        log(f"round {r + 1}: listing: local {rep['local_us'] / 1e6:.2f} s, "
            f"S3 {rep['s3_us'] / 1e6:.2f} s")


def med(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[0], xs[-1]


def fmt_cpu(rows):
    """The median (min–max) CPU seconds of runs, from before the column existed: '–'."""
    cpu = [x["cpu"] for x in rows if x.get("cpu") is not None]
    if not cpu:
        return "–"
    m, lo, hi = med(cpu)
    return f"{m:.2f} ({lo:.2f}–{hi:.2f})"


def fmt_rate(total, times):
    m, lo, hi = med(times)
    # The rate at the median time, and the range from the slowest to the fastest run.
    return f"{total / m:,.0f} ({total / hi:,.0f}–{total / lo:,.0f})"


def report(results):
    lines = []
    size = f"{SMALL:,} × {SMALL_KIB} KiB + {BIG} × {BIG_MIB} MiB"
    lines.append(f"Data: {size} ({OBJECTS:,} objects, {BYTES / 1e6:,.0f} MB). "
                 f"Median (min–max) over {ROUNDS} rounds; rates are at the median time, the "
                 "range from the slowest to the fastest run.\n")
    names = {"up": "local → S3", "down": "S3 → local"}
    cont = [x for x in results if "tool" in x]
    if cont:
        lines.append("| row | tool | wall s | CPU s (user + sys) | objects/s | MB/s | "
                     "peak RSS MiB | Sync's own run s |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for direction in ["up", "down"]:
            for phase in ["fresh", "unchanged"]:
                for tool in TOOLS:
                    rs = [x for x in cont if x["direction"] == direction and x["phase"] == phase
                          and x["tool"] == tool]
                    if not rs:
                        continue
                    w = [x["wall"] for x in rs]
                    m, lo, hi = med(w)
                    inner = ""
                    if rs[0]["inner"] is not None:
                        im, ilo, ihi = med([x["inner"] for x in rs])
                        inner = f"{im:.2f} ({ilo:.2f}–{ihi:.2f})"
                    mb = BYTES / 1e6 if phase == "fresh" else None
                    lines.append(
                        f"| {names[direction]}, {phase} | {tool} | {m:.2f} ({lo:.2f}–{hi:.2f}) | "
                        f"{fmt_cpu(rs)} | {fmt_rate(OBJECTS, w)} | "
                        f"{fmt_rate(mb, w) if mb else '–'} | "
                        f"{max(x['rss_mib'] for x in rs):.0f} | {inner} |")
        lines.append("")
    st = [x for x in results if "startup" in x]
    if st:
        lines.append(f"Start-up: each command on an empty directory (no request), in turn, "
                     f"{len(st) // len(STARTUP)} rounds; whole process, median (min–max):\n")
        lines.append("| command | wall s | CPU s (user + sys) | peak RSS MiB |")
        lines.append("|---|---|---|---|")
        for name in STARTUP:
            rs = [x for x in st if x["startup"] == name]
            m, lo, hi = med([x["wall"] for x in rs])
            lines.append(f"| {name} | {m:.2f} ({lo:.2f}–{hi:.2f}) | {fmt_cpu(rs)} | "
                         f"{max(x['rss_mib'] for x in rs):.0f} |")
        lines.append("")
    nod = [x for x in results if "nodes" in x]
    if nod:
        lines.append("ObjectStoreX.Sync, local → S3, workers on 1, 2 and 3 nodes on this "
                     "machine (the same objects in flight in all):\n")
        lines.append("| nodes | phase | objects in flight per node | wall s | Sync's own run s | "
                     "objects/s (own run) | MB/s (own run) | per node: share of objects, MB/s, "
                     "peak RSS MiB |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for k in [1, 2, 3]:
            for phase in ["fresh", "unchanged"]:
                rs = [x for x in nod if x["nodes"] == k and x["phase"] == phase]
                if not rs:
                    continue
                w = [x["wall"] for x in rs]
                i = [x["inner"] for x in rs]
                m, lo, hi = med(w)
                im, ilo, ihi = med(i)
                per = []
                for j in range(k):
                    objs = [n["copied"]["objects"] + n["skipped"]["objects"]
                            for n in (x["per_node"][j] for x in rs)]
                    rate = [x["per_node"][j]["copied"]["bytes"] / 1e6 / x["inner"] for x in rs]
                    hwm = max(x["per_node"][j]["vm_hwm_kib"] for x in rs) / 1024
                    per.append(f"{statistics.median(objs) / OBJECTS:.0%}, "
                               f"{statistics.median(rate):,.0f}, {hwm:.0f}")
                mb = fmt_rate(BYTES / 1e6, i) if phase == "fresh" else "–"
                lines.append(
                    f"| {k} | {phase} | {rs[0]['per_node_conc']} | {m:.2f} ({lo:.2f}–{hi:.2f}) | "
                    f"{im:.2f} ({ilo:.2f}–{ihi:.2f}) | {fmt_rate(OBJECTS, i)} | {mb} | "
                    f"{'; '.join(per)} |")
        lines.append("")
    lst = [x["listing"] for x in results if "listing" in x]
    if lst:
        lines.append("The coordinator's listing alone (bench/sync_listing.exs), "
                     f"{OBJECTS:,} objects:\n")
        lines.append("| side | s | objects/s |")
        lines.append("|---|---|---|")
        for side, name in [("local", "local directory (walked)"), ("s3", "S3 (s3s-fs), flat"),
                           ("s3_tree", "S3 (s3s-fs), listing: :tree")]:
            t = [x[f"{side}_us"] / 1e6 for x in lst]
            m, lo, hi = med(t)
            lines.append(f"| {name} | {m:.2f} ({lo:.2f}–{hi:.2f}) | {fmt_rate(OBJECTS, t)} |")
        lines.append("")
    return "\n".join(lines)


def report_from(path):
    """The tables again from a runs.jsonl (e.g. of an interrupted run)."""
    return report([json.loads(x) for x in open(path)])


def compile_osx():
    shutil.rmtree(OSX_EBIN, ignore_errors=True)
    OSX_EBIN.mkdir(parents=True)
    subprocess.run(["elixirc", "-pa", str(ROOT / "_build/prod/lib/objectstorex/ebin"),
                    "-o", str(OSX_EBIN), str(ROOT / "bench/sync_bench.exs")],
                   check=True, env=os.environ | {"SYNC_BENCH_COMPILE_ONLY": "1"})


def main():
    global LOG
    OUT.mkdir(parents=True, exist_ok=True)
    compile_osx()
    LOG = open(OUT / "runs.jsonl", "a")
    log(f"load {os.getloadavg()}")
    make_source()
    results = []
    if "contenders" in ONLY:
        contenders(results)
    if "startup" in ONLY:
        startup(results)
    if "nodes" in ONLY:
        nodes(results)
    if "listing" in ONLY:
        listing(results)
    text = report(results)
    (OUT / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
