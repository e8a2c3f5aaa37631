#!/usr/bin/env bash
# The main job: a generated file copied into a local-filesystem store and back with
# `mix objectstorex.cp --checksum sha256`, then checked: the digests of both copies must equal
# sha256sum's digest of the original, and the file read back must equal it byte for byte.
#
#   bash examples/main_job.sh [SIZE_MIB]      (default 256)
#
# Runs scripts/install.sh first (instant when everything is installed). No server is needed.
# On a terminal each copy draws a progress bar; each prints its bytes, duration, rate and
# digest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

source scripts/env.sh

size_mib="${1:-256}"
[[ "$size_mib" =~ ^[1-9][0-9]*$ ]] || {
  echo "usage: $0 [SIZE_MIB]" >&2
  exit 2
}

# After the PATH fix above: install.sh refuses a cargo that is not on PATH.
bash scripts/install.sh

work="$(mktemp -d "${TMPDIR:-/tmp}/objectstorex-main-job.XXXXXX")"
trap 'rm -rf "$work"' EXIT
source_file="$work/source.bin"
store_url="file://$work/store/main-job/data.bin"
back_file="$work/read-back.bin"

# Built first, on its own: the first build of the native library takes a few minutes and shows
# cargo's progress.
mix compile

echo "==> generating $size_mib MiB of random data in $source_file"
head -c "$((size_mib * 1048576))" /dev/urandom >"$source_file"
expected="$(sha256sum "$source_file" | cut -d' ' -f1)"

# Prints the copy's summary line and returns the digest it reports.
copy() {
  local summary
  summary="$(mix objectstorex.cp --checksum sha256 "$@")"
  printf '%s\n' "$summary" >&2
  grep -o 'sha256 [0-9a-f]\{64\}' <<<"$summary" | cut -d' ' -f2
}

echo "==> into the local-filesystem store"
uploaded="$(copy "$source_file" "$store_url")"
echo "==> and back"
downloaded="$(copy "$store_url" "$back_file")"

if [[ "$uploaded" == "$expected" && "$downloaded" == "$expected" ]] && cmp -s "$source_file" "$back_file"; then
  echo "==> verified: sha256 $expected (sha256sum, both copies and the bytes read back agree)"
else
  echo "main_job: MISMATCH: sha256sum $expected, upload ${uploaded:-none}, download ${downloaded:-none}" >&2
  exit 1
fi
