#!/usr/bin/env bash
# `make bench`: ObjectStoreX beside raw object_store, obstore, boto3, s5cmd and cp, and
# ObjectStoreX.Sync beside rclone and s5cmd (bench/sync.sh), in one run.
# Installs what is missing (safe to run again), builds what it runs, starts the S3 server
# (bench/s3s.sh) on 127.0.0.1, runs bench/bench.py, and stops the server on exit, failure
# included. Writes bench/README.md, bench/bench.png and the cost curves (bench/curves-*.png,
# see bench/curves.py) on a full run; see bench/bench.py for the BENCH_* settings (a smoke
# run: BENCH_MIB=16 BENCH_SCALE=0.01 make bench, written to bench/results/smoke/). The sync
# benchmark, the rows, the VM-health runs and the curves share 25 minutes on 2 cores (see
# BENCH_BUDGET in bench/bench.py). `make bench-curves` (BENCH_CURVES_ONLY=1, BENCH_SYNC=0) runs
# the cost curves alone, every point, to bench/curves/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export BENCH_STARTED="${BENCH_STARTED:-$(date +%s)}"

readonly OBSTORE_VERSION="0.12.1"
readonly BOTO3_VERSION="1.44.5"
readonly S3TRANSFER_VERSION="0.19.3"
readonly S5CMD_VERSION="0.3.3"
readonly MATPLOTLIB_VERSION="3.11.2"

TOOLS_DIR="${OBJECTSTOREX_TOOLS_DIR:-$HOME/.cache/objectstorex-tools}"
VENV_DIR="$TOOLS_DIR/bench-venv"
S3_PORT="${BENCH_S3_PORT:-9014}"
S3_BUCKET="bench"
RESULTS="$ROOT/bench/results"
S3_DATA="$RESULTS/s3s-data"

log() { printf '==> bench: %s\n' "$*" >&2; }
die() {
  printf 'bench/run.sh: error: %s\n' "$*" >&2
  exit 1
}

# --- Elixir, Rust, and the Debian packages the bench itself uses ----------------------------
source scripts/env.sh
bash scripts/install.sh --bench

# --- the Python contenders and matplotlib, pinned, in their own venv -------------------------
source scripts/venv.sh
ensure_venv "$VENV_DIR" "obstore==$OBSTORE_VERSION" "boto3==$BOTO3_VERSION" \
  "s3transfer==$S3TRANSFER_VERSION" "s5cmd==$S5CMD_VERSION" "matplotlib==$MATPLOTLIB_VERSION" ||
  die "the Python tools in $VENV_DIR did not install (remove that directory and retry)"
log "Python tools present in $VENV_DIR"

# --- the S3 server (bench/s3s.sh): a Rust build of a few minutes, once -----------------------
source bench/s3s.sh
build_s3s

# --- build everything the bench runs ---------------------------------------------------------
log "building ObjectStoreX (MIX_ENV=prod) and the raw Rust program"
MIX_ENV=prod mix compile
cargo build --release -p objectstorex_bench_raw
mkdir -p "$RESULTS/bin"
# A copy: another build sharing CARGO_TARGET_DIR must not swap the program mid-run.
cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/objectstorex_bench_raw" "$RESULTS/bin/"

# --- the sync benchmark first (bench/sync.sh, its own s3s-fs): its tables and its coordinator's
# rate go into bench/README.md. A quarter of `make bench-sync`'s default, to keep the whole run
# within 25 minutes with three rounds of the rows after it; BENCH_SYNC=0 leaves it out.
rm -f "$RESULTS/sync/runs.jsonl" "$RESULTS/sync/results.md"
if [[ "${BENCH_SYNC:-1}" != 0 ]]; then
  if [[ "${BENCH_MIB:-1024}" == 1024 && "${BENCH_SCALE:-1}" == 1 ]]; then
    export SYNC_SMALL="${SYNC_SMALL:-2500}" SYNC_BIG="${SYNC_BIG:-4}" \
      SYNC_BIG_MIB="${SYNC_BIG_MIB:-32}" SYNC_ROUNDS="${SYNC_ROUNDS:-2}" \
      SYNC_NODE_ROUNDS="${SYNC_NODE_ROUNDS:-1}"
  else
    export SYNC_SMALL="${SYNC_SMALL:-200}" SYNC_BIG="${SYNC_BIG:-2}" \
      SYNC_BIG_MIB="${SYNC_BIG_MIB:-8}" SYNC_ROUNDS="${SYNC_ROUNDS:-1}" \
      SYNC_NODE_ROUNDS="${SYNC_NODE_ROUNDS:-1}"
  fi
  # A failure is reported in bench/README.md and fails the run at the end, after the rest.
  bash bench/sync.sh || log "the sync benchmark failed (its output is above)"
fi

# --- the S3 server, on loopback, stopped on exit ---------------------------------------------
cleanup() {
  stop_s3s
  rm -rf "$S3_DATA" "$RESULTS/run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start_s3s "$S3_PORT" "$S3_DATA" "$S3_BUCKET" "$RESULTS/s3s-fs.log" BENCH_S3_PORT

export BENCH_S3="s3:http://127.0.0.1:$S3_PORT:$S3_BUCKET"
export BENCH_S3_SERVER="s3s-fs $S3S_FS_VERSION with TCP_NODELAY (bench/s3s-server), data on \
the local disk"
export BENCH_RAW_BIN="$RESULTS/bin/objectstorex_bench_raw"
"$VENV_DIR/bin/python" bench/bench.py
