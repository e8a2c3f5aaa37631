#!/usr/bin/env bash
# The whole ObjectStoreX test suite on a fresh machine, in one command:
#
#   bash scripts/test.sh [mix test args...]
#
# Installs what is missing (Elixir, test servers), starts S3/Azure/WebDAV servers on 127.0.0.1
# (always stopped again on exit), then runs every check. All checks run even after one fails, so
# one run shows every problem; the exit status is non-zero if any failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

source scripts/env.sh

# Colour only on a terminal: CI logs stay plain text.
if [[ -t 1 ]]; then
  BOLD=$'\033[1m' RED=$'\033[31;1m' GREEN=$'\033[32m' RESET=$'\033[0m'
else
  BOLD="" RED="" GREEN="" RESET=""
fi

header() {
  printf '\n%s==================== %s ====================%s\n' "$BOLD" "$*" "$RESET"
}

header "install (scripts/install.sh --test-servers)"
bash scripts/install.sh --test-servers

# Stop the servers however this script ends: success, failure, Ctrl-C or SIGTERM.
cleanup() {
  header "stopping test servers"
  bash "$ROOT/scripts/test-servers.sh" stop || true
}
trap cleanup EXIT

# Checks run as background jobs that this script waits for: bash runs a trap during `wait` at
# once, whereas for a foreground child it ignores a Ctrl-C that the child survived, and the BEAM
# survives it (its BREAK menu reads EOF and exits 0, which would pass as a green mix test).
child=""
on_signal() {
  if [[ -n "$child" ]]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  printf '\n%sinterrupted%s\n' "$RED" "$RESET" >&2
  exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

header "start test servers (scripts/test-servers.sh start)"
bash scripts/test-servers.sh start
server_env="$(bash scripts/test-servers.sh env)"
printf '%s\n' "$server_env"
eval "$server_env"

failed=()
passed=()

# Runs one check; records the result instead of exiting so that later checks still run.
step() {
  local name="$1" started status=0
  shift
  header "$name"
  started=$SECONDS
  "$@" &
  child=$!
  wait "$child" || status=$?
  child=""
  if ((status == 0)); then
    passed+=("$name")
    printf '%s--> ok: %s (%ss)%s\n' "$GREEN" "$name" "$((SECONDS - started))" "$RESET"
  else
    failed+=("$name (exit $status)")
    printf '%s--> FAILED: %s (exit %s, %ss)%s\n' "$RED" "$name" "$status" "$((SECONDS - started))" "$RESET" >&2
  fi
}

export MIX_ENV=test

step "cargo fmt --all -- --check" cargo fmt --all -- --check
step "cargo clippy --release --all-targets -- -D warnings" \
  cargo clippy --release --all-targets -- -D warnings
step "cargo test --release" cargo test --release
step "mix format --check-formatted" mix format --check-formatted
# The bench driver's pure parts (its turn order), so that the bench's fairness is checked too.
step "python3 -m unittest discover -s bench" python3 -m unittest discover -s bench -p 'test_*.py'
# --force: warnings are only reported for files being compiled, so an up-to-date build from an
# earlier run would hide them. Only the Elixir code is recompiled (cargo is a no-op when unchanged).
step "MIX_ENV=test mix compile --force --warnings-as-errors" mix compile --force --warnings-as-errors
step "MIX_ENV=test mix test${*:+ $*}" mix test "$@"

header "summary"
for name in "${passed[@]}"; do
  printf '  ok      %s\n' "$name"
done
if ((${#failed[@]} > 0)); then
  for name in "${failed[@]}"; do
    printf '%s  FAILED  %s%s\n' "$RED" "$name" "$RESET" >&2
  done
  printf '%s%s of %s checks FAILED%s\n' "$RED" "${#failed[@]}" "$((${#failed[@]} + ${#passed[@]}))" "$RESET" >&2
  exit 1
fi
printf '%sall %s checks passed%s\n' "$GREEN" "${#passed[@]}" "$RESET"
