"""The Python contenders of the benchmark: obstore and boto3 (s3transfer).

    python bench/peers.py TOOL WORKLOAD STORE ARGS...

TOOL is `obstore` or `boto3`. WORKLOAD and STORE follow the bench program contract described
in bench/bench.py; the program prints `CPU <micros>`, the user + system time of the whole process
(every thread) during the timed part, and `RESULT <units> <micros>` where micros is the wall
time of the timed part only, and exits non-zero (printing no RESULT) on any error.

obstore is the Python binding of the same `object_store` crate ObjectStoreX binds, so it runs
on every store. boto3 only speaks S3. Each tool is given the same knobs as ObjectStoreX where
it has them:

- obstore: `put(..., chunk_size=PART, max_concurrency=N)` for uploads, `get(...).stream(
  min_chunk_size=CHUNK)` for downloads, `put_async`/`get_async` with N coroutines in flight.
- boto3: s3transfer's `upload_fileobj` with `TransferConfig(multipart_chunksize=PART,
  max_concurrency=N)` for uploads; `get_object` and `Body.iter_chunks(CHUNK)` for downloads
  (one streaming GET, as the other contenders do); a pool of N threads sharing one client for
  the many-object workloads. Checksums are computed only when S3 requires them, as the
  `object_store` contenders do not compute any either.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

MIB = 1024 * 1024
BIG = "bench/big.bin"


def many_key(size: int, i: int) -> str:
    return f"bench/many-{size}/{i:06d}"


def list_key(i: int) -> str:
    return f"bench/list/{i:06d}"


def block() -> bytes:
    """One MiB that does not compress, made before timing and repeated."""
    return os.urandom(MIB)


def parse_store(spec: str) -> tuple[str, str, str]:
    """memory | local:/abs/dir | s3:http://127.0.0.1:PORT:BUCKET -> (kind, location, bucket)."""
    if spec == "memory":
        return ("memory", "", "")
    if spec.startswith("local:"):
        return ("local", spec[len("local:") :], "")
    if spec.startswith("s3:"):
        endpoint, _, bucket = spec[len("s3:") :].rpartition(":")
        if not endpoint or not bucket:
            raise SystemExit(f"bad S3 store spec {spec!r}: want s3:ENDPOINT:BUCKET")
        return ("s3", endpoint, bucket)
    raise SystemExit(f"unknown store {spec!r}")


def cpu_micros() -> int:
    """User + system time of this process, every thread, from /proc/self/stat (as the other
    contenders read it: the same source and 10 ms resolution for all)."""
    with open("/proc/self/stat") as f:
        # Fields 14 and 15 (utime, stime), counted after the command name in parentheses.
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000 // os.sysconf("SC_CLK_TCK")


def wait_for_start() -> None:
    """Waits for BENCH_START_AT (seconds since the epoch), set by the driver so that every
    contender's timed part starts at the same moment after its sync, whatever its start-up
    took; prints `LATE micros` if that moment had passed."""
    at = os.environ.get("BENCH_START_AT")
    if not at:
        return
    wait = float(at) - time.time()
    if wait > 0:
        time.sleep(wait)
    else:
        print(f"LATE {int(-wait * 1_000_000)}", flush=True)


class Timer:
    def __enter__(self) -> "Timer":
        wait_for_start()
        self.cpu = cpu_micros()
        self.started = time.perf_counter_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        self.micros = (time.perf_counter_ns() - self.started) // 1000
        self.cpu = cpu_micros() - self.cpu


def report(units: int, timer: Timer) -> None:
    print(f"CPU {timer.cpu}", flush=True)
    print(f"RESULT {units} {timer.micros}", flush=True)


# --- obstore ---------------------------------------------------------------------------------


class Obstore:
    def __init__(self, spec: str) -> None:
        import obstore
        from obstore.store import LocalStore, MemoryStore, S3Store

        self.obs = obstore
        self.kind, location, bucket = parse_store(spec)
        if self.kind == "memory":
            self.store = MemoryStore()
        elif self.kind == "local":
            self.store = LocalStore(location, mkdir=True)
        else:
            self.store = S3Store(
                bucket,
                endpoint=location,
                region="us-east-1",
                access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                virtual_hosted_style_request=False,
                client_options={"allow_http": True},
            )

    def upload(self, size_mib: int, part_mib: int, concurrency: int) -> None:
        data = block()
        with Timer() as t:
            self.obs.put(
                self.store,
                BIG,
                (data for _ in range(size_mib)),
                chunk_size=part_mib * MIB,
                max_concurrency=concurrency,
            )
        report(size_mib * MIB, t)

    def download(self, size_mib: int, chunk_mib: int) -> None:
        if self.kind == "memory":
            data = block()
            self.obs.put(self.store, BIG, (data for _ in range(size_mib)), chunk_size=64 * MIB)
        seen = 0
        with Timer() as t:
            for chunk in self.obs.get(self.store, BIG).stream(min_chunk_size=chunk_mib * MIB):
                seen += len(chunk)
        if seen != size_mib * MIB:
            raise SystemExit(f"download saw {seen} bytes, expected {size_mib * MIB}")
        report(seen, t)

    async def _each(self, count: int, concurrency: int, job) -> None:
        indexes = iter(range(count))

        async def worker() -> None:
            for i in indexes:
                await job(i)

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    def put_many(self, count: int, size: int, concurrency: int) -> None:
        payload = block()[:size]

        async def put(i: int) -> None:
            await self.obs.put_async(self.store, many_key(size, i), payload)

        with Timer() as t:
            asyncio.run(self._each(count, concurrency, put))
        report(count, t)

    def get_many(self, count: int, size: int, concurrency: int) -> None:
        if self.kind == "memory":
            payload = block()[:size]
            for i in range(count):
                self.obs.put(self.store, many_key(size, i), payload)

        async def get(i: int) -> None:
            body = await (await self.obs.get_async(self.store, many_key(size, i))).bytes_async()
            if len(body) != size:
                raise RuntimeError(f"{many_key(size, i)}: {len(body)} bytes, expected {size}")

        with Timer() as t:
            asyncio.run(self._each(count, concurrency, get))
        report(count, t)

    def fill_list(self, count: int) -> None:
        async def put(i: int) -> None:
            await self.obs.put_async(self.store, list_key(i), b"")

        with Timer() as t:
            asyncio.run(self._each(count, 64, put))
        report(count, t)

    def list(self, count: int) -> None:
        if self.kind == "memory":
            for i in range(count):
                self.obs.put(self.store, list_key(i), b"")
        seen = 0
        with Timer() as t:
            for batch in self.obs.list(self.store, "bench/list/", chunk_size=1000):
                seen += len(batch)
        if seen != count:
            raise SystemExit(f"list saw {seen} entries, expected {count}")
        report(seen, t)


# --- boto3 / s3transfer ----------------------------------------------------------------------


class NonSeekableStream:
    """SIZE_MIB MiB of the repeated block, read once front to back like a pipe."""

    def __init__(self, data: bytes, size_mib: int) -> None:
        self.data = memoryview(data)
        self.left = size_mib * len(data)
        self.offset = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.left
        out = bytearray()
        while n > 0 and self.left > 0:
            take = min(n, self.left, len(self.data) - self.offset)
            out += self.data[self.offset : self.offset + take]
            self.offset = (self.offset + take) % len(self.data)
            self.left -= take
            n -= take
        return bytes(out)

    def seekable(self) -> bool:
        return False


class Boto3:
    def __init__(self, spec: str, concurrency: int = 10) -> None:
        import boto3
        from botocore.config import Config

        kind, endpoint, self.bucket = parse_store(spec)
        if kind != "s3":
            raise SystemExit("boto3 speaks S3 only")
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            config=Config(
                s3={"addressing_style": "path"},
                max_pool_connections=max(concurrency, 10),
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def upload(self, size_mib: int, part_mib: int, concurrency: int) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=part_mib * MIB,
            multipart_chunksize=part_mib * MIB,
            max_concurrency=concurrency,
            use_threads=True,
        )
        stream = NonSeekableStream(block(), size_mib)
        with Timer() as t:
            self.client.upload_fileobj(stream, self.bucket, BIG, Config=config)
        report(size_mib * MIB, t)

    def download(self, size_mib: int, chunk_mib: int) -> None:
        seen = 0
        with Timer() as t:
            body = self.client.get_object(Bucket=self.bucket, Key=BIG)["Body"]
            for chunk in body.iter_chunks(chunk_mib * MIB):
                seen += len(chunk)
        if seen != size_mib * MIB:
            raise SystemExit(f"download saw {seen} bytes, expected {size_mib * MIB}")
        report(seen, t)

    def _each(self, count: int, concurrency: int, job) -> None:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            # list() re-raises the first error of any request.
            list(pool.map(job, range(count)))

    def put_many(self, count: int, size: int, concurrency: int) -> None:
        payload = block()[:size]

        def put(i: int) -> None:
            self.client.put_object(Bucket=self.bucket, Key=many_key(size, i), Body=payload)

        with Timer() as t:
            self._each(count, concurrency, put)
        report(count, t)

    def get_many(self, count: int, size: int, concurrency: int) -> None:
        def get(i: int) -> None:
            body = self.client.get_object(Bucket=self.bucket, Key=many_key(size, i))["Body"].read()
            if len(body) != size:
                raise RuntimeError(f"{many_key(size, i)}: {len(body)} bytes, expected {size}")

        with Timer() as t:
            self._each(count, concurrency, get)
        report(count, t)


# --- command line ----------------------------------------------------------------------------

ARITY = {"upload": 3, "download": 2, "put_many": 3, "get_many": 3, "list": 1, "fill_list": 1}


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[0] not in ("obstore", "boto3") or argv[1] not in ARITY:
        raise SystemExit(__doc__)
    tool, workload, spec, args = argv[0], argv[1], argv[2], [int(a) for a in argv[3:]]
    if len(args) != ARITY[workload]:
        raise SystemExit(f"{workload} takes {ARITY[workload]} arguments, got {len(args)}")
    if tool == "obstore":
        contender = Obstore(spec)
    else:
        concurrency = args[2] if workload in ("upload", "put_many", "get_many") else 10
        contender = Boto3(spec, concurrency)
    run = getattr(contender, workload, None)
    if run is None:
        raise SystemExit(f"{tool} has no {workload} workload here")
    run(*args)
    # The work is done and its RESULT printed. Leave without the interpreter's shutdown: a
    # worker thread of obstore's async runtime can take the GIL while Python 3.11 finalizes,
    # which aborts the process (exit 134) after a run that went well.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
