#!/usr/bin/env bash
# Runs the benchmarks and writes bench/README.md: memory, local and an S3 server on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test-servers
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -p objectstorex_bench_raw
mix compile
bash scripts/test-servers.sh start
trap 'bash scripts/test-servers.sh stop' EXIT
eval "$(bash scripts/test-servers.sh env)"
OBJECTSTOREX_BENCH_S3="$OBJECTSTOREX_TEST_S3_ENDPOINT" \
  OBJECTSTOREX_BENCH_S3_BUCKET="$OBJECTSTOREX_TEST_S3_BUCKET" \
  mix run bench/run.exs
