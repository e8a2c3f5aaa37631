#!/usr/bin/env bash
# Starts and stops the real object-storage servers the test suite runs against, all bound to
# 127.0.0.1 only:
#   S3         ministack        port ${OBJECTSTOREX_S3_PORT:-4566}
#   Azure Blob Azurite          port ${OBJECTSTOREX_AZURE_PORT:-10000}
#   WebDAV     rclone serve     port ${OBJECTSTOREX_WEBDAV_PORT:-8080}
#
#   scripts/test-servers.sh start   start what is not running, wait until ready, create the
#                                   bucket/container "objectstorex-test"
#   scripts/test-servers.sh stop    stop the servers this script started, remove their data
#   scripts/test-servers.sh env     print export lines: eval "$(scripts/test-servers.sh env)"
#
# Install the servers first with scripts/install.sh --test-servers. Pid files, logs and data live
# in ${OBJECTSTOREX_SERVERS_DIR:-/tmp/objectstorex-servers}.
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS_DIR="${OBJECTSTOREX_TOOLS_DIR:-$HOME/.cache/objectstorex-tools}"
STATE_DIR="${OBJECTSTOREX_SERVERS_DIR:-/tmp/objectstorex-servers}"
S3_PORT="${OBJECTSTOREX_S3_PORT:-4566}"
AZURE_PORT="${OBJECTSTOREX_AZURE_PORT:-10000}"
WEBDAV_PORT="${OBJECTSTOREX_WEBDAV_PORT:-8080}"
READY_TIMEOUT="${OBJECTSTOREX_SERVERS_TIMEOUT:-60}"

readonly HOST="127.0.0.1"
readonly BUCKET="objectstorex-test"
readonly VENV_PYTHON="$TOOLS_DIR/venv/bin/python"
readonly MINISTACK="$TOOLS_DIR/venv/bin/ministack"
readonly AZURITE="$TOOLS_DIR/npm/node_modules/.bin/azurite-blob"
readonly SERVERS=(s3 azure webdav)

log() { printf '==> test-servers: %s\n' "$*" >&2; }
die() {
  printf 'test-servers.sh: error: %s\n' "$*" >&2
  exit 1
}

port_of() {
  case "$1" in
    s3) echo "$S3_PORT" ;;
    azure) echo "$AZURE_PORT" ;;
    webdav) echo "$WEBDAV_PORT" ;;
  esac
}

# A word that must appear in the command line of the process a pid file names: a stale pid file
# whose pid was reused by something else must never get that process killed.
marker_of() {
  case "$1" in
    s3) echo "ministack" ;;
    azure) echo "azurite" ;;
    webdav) echo "rclone" ;;
  esac
}

pid_file() { echo "$STATE_DIR/$1.pid"; }
log_file() { echo "$STATE_DIR/$1.log"; }
data_dir() { echo "$STATE_DIR/$1-data"; }

# Prints the pid of our running server $1, or fails.
our_pid() {
  local file pid
  file="$(pid_file "$1")"
  [[ -f "$file" ]] || return 1
  pid="$(<"$file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$(marker_of "$1")" || return 1
  echo "$pid"
}

# Loopback only: never let an http_proxy from the environment route these requests elsewhere.
lcurl() { curl --noproxy '*' "$@"; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Any HTTP answer at all (curl prints 000 when nothing answered).
http_answers() {
  local code
  code="$(lcurl -s -o /dev/null -m 5 -w '%{http_code}' "$1" 2>/dev/null || true)"
  [[ -n "$code" && "$code" != "000" ]]
}

ready() {
  case "$1" in
    s3) lcurl -sf -o /dev/null -m 5 "http://$HOST:$S3_PORT/_ministack/health" ;;
    azure) http_answers "http://$HOST:$AZURE_PORT/devstoreaccount1?comp=list" ;;
    webdav) http_answers "http://$HOST:$WEBDAV_PORT/" ;;
  esac
}

fail_with_log() {
  local name="$1" msg="$2"
  {
    printf '\ntest-servers.sh: error: %s\n' "$msg"
    printf -- '--- last 40 lines of %s ---\n' "$(log_file "$name")"
    tail -n 40 "$(log_file "$name")" 2>/dev/null || echo "(no log)"
    printf -- '--- end of log ---\n'
  } >&2
  # Leave nothing half-started behind.
  cmd_stop
  exit 1
}

launch() {
  local name="$1" port data
  port="$(port_of "$name")"
  data="$(data_dir "$name")"
  rm -rf "$data"
  mkdir -p "$data"
  # setsid: the server outlives this script and is not hit by the caller's Ctrl-C; all of its
  # stdio goes to the log, so it never holds a caller's pipe open. $! is the server itself, since
  # setsid execs directly when its caller is not a process-group leader (a background job is not).
  case "$name" in
    s3)
      [[ -x "$MINISTACK" ]] || die "ministack not found at $MINISTACK: run scripts/install.sh --test-servers"
      # BIND_HOST: without it ministack listens on every interface. TMPDIR and S3_DATA_DIR keep
      # its pid file and any spill inside our state dir. Objects are held in memory.
      BIND_HOST="$HOST" GATEWAY_PORT="$port" SERVICES=s3 SFTP_ENABLED=0 \
        TMPDIR="$data" S3_DATA_DIR="$data/s3" STATE_DIR="$data/state" \
        setsid "$MINISTACK" </dev/null >"$(log_file "$name")" 2>&1 &
      ;;
    azure)
      [[ -x "$AZURITE" ]] || die "azurite not found at $AZURITE: run scripts/install.sh --test-servers"
      setsid "$AZURITE" --blobHost "$HOST" --blobPort "$port" --location "$data" \
        --silent --skipApiVersionCheck --loose --disableTelemetry \
        </dev/null >"$(log_file "$name")" 2>&1 &
      ;;
    webdav)
      command -v rclone >/dev/null 2>&1 || die "rclone not found: run scripts/install.sh --test-servers"
      # --config /dev/null: never read or write a user's rclone config.
      setsid rclone serve webdav "$data" --addr "$HOST:$port" --config /dev/null \
        </dev/null >"$(log_file "$name")" 2>&1 &
      ;;
  esac
  echo "$!" >"$(pid_file "$name")"
}

start_one() {
  local name="$1" port pid
  port="$(port_of "$name")"
  if pid="$(our_pid "$name")"; then
    log "$name already running (pid $pid, port $port)"
    return 0
  fi
  rm -f "$(pid_file "$name")"
  launch "$name"
  log "$name starting (pid $(<"$(pid_file "$name")"), port $port, log $(log_file "$name"))"
}

wait_ready() {
  local name="$1" deadline
  deadline=$((SECONDS + READY_TIMEOUT))
  until ready "$name"; do
    our_pid "$name" >/dev/null || fail_with_log "$name" "$name exited before it was ready"
    ((SECONDS < deadline)) || fail_with_log "$name" "$name not ready after ${READY_TIMEOUT}s on port $(port_of "$name")"
    sleep 0.5
  done
  log "$name ready on http://$HOST:$(port_of "$name")"
}

create_bucket() {
  local code
  # Unsigned PUT is enough for ministack. 409 = it already exists (a second start).
  code="$(lcurl -s -o /dev/null -m 10 -w '%{http_code}' -X PUT "http://$HOST:$S3_PORT/$BUCKET" || true)"
  case "$code" in
    200 | 409) ;;
    *) fail_with_log s3 "creating S3 bucket $BUCKET answered HTTP $code" ;;
  esac
  code="$(lcurl -s -o /dev/null -m 10 -w '%{http_code}' "http://$HOST:$S3_PORT/$BUCKET" || true)"
  [[ "$code" == 200 ]] || fail_with_log s3 "S3 bucket $BUCKET not listable after creation (HTTP $code)"
  log "S3 bucket $BUCKET ready"
}

create_container() {
  # object_store cannot create Azure containers: a SharedKey-signed request does it.
  python3 "$SCRIPTS_DIR/azurite_create_container.py" \
    --endpoint "http://$HOST:$AZURE_PORT/devstoreaccount1" --container "$BUCKET" >&2 ||
    fail_with_log azure "creating Azure container $BUCKET failed"
  python3 "$SCRIPTS_DIR/azurite_create_container.py" --check \
    --endpoint "http://$HOST:$AZURE_PORT/devstoreaccount1" --container "$BUCKET" >/dev/null ||
    fail_with_log azure "Azure container $BUCKET not found after creation"
  log "Azure container $BUCKET ready"
}

cmd_start() {
  command -v curl >/dev/null 2>&1 || die "curl not found: run scripts/install.sh --test-servers"
  command -v python3 >/dev/null 2>&1 || die "python3 not found"
  mkdir -p "$STATE_DIR"
  local name port
  # Someone else's server on one of our ports would make the tests talk to the wrong thing:
  # check every port before starting anything, so a failure leaves nothing half-started.
  for name in "${SERVERS[@]}"; do
    port="$(port_of "$name")"
    if ! our_pid "$name" >/dev/null && port_open "$port"; then
      die "port $HOST:$port (for $name) is already in use by a process this script did not start; stop it or set OBJECTSTOREX_$(tr '[:lower:]' '[:upper:]' <<<"$name")_PORT"
    fi
  done
  # Start all first, then wait: they boot in parallel.
  for name in "${SERVERS[@]}"; do start_one "$name"; done
  for name in "${SERVERS[@]}"; do wait_ready "$name"; done
  create_bucket
  create_container
}

cmd_stop() {
  local name pid i
  local -A pids=()
  [[ -d "$STATE_DIR" ]] || return 0
  # SIGTERM to all first, then wait: each takes 1-2 s to shut down cleanly.
  for name in "${SERVERS[@]}"; do
    if pid="$(our_pid "$name")"; then
      pids[$name]="$pid"
      kill -TERM "$pid" 2>/dev/null || true
    elif [[ -f "$(pid_file "$name")" ]]; then
      log "$name was not running (stale pid file)"
    fi
  done
  for name in "${!pids[@]}"; do
    pid="${pids[$name]}"
    # Up to 10 s for a clean exit, then SIGKILL.
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
    log "$name stopped (pid $pid)"
  done
  for name in "${SERVERS[@]}"; do
    rm -f "$(pid_file "$name")"
    rm -rf "$(data_dir "$name")"
    if port_open "$(port_of "$name")"; then
      log "warning: port $HOST:$(port_of "$name") is still in use (by a process this script did not start)"
    fi
  done
}

cmd_env() {
  local pair name value
  for pair in \
    "OBJECTSTOREX_TEST_S3_ENDPOINT=http://$HOST:$S3_PORT" \
    "OBJECTSTOREX_TEST_S3_BUCKET=$BUCKET" \
    "OBJECTSTOREX_TEST_AZURE_ENDPOINT=http://$HOST:$AZURE_PORT/devstoreaccount1" \
    "OBJECTSTOREX_TEST_AZURE_CONTAINER=$BUCKET" \
    "OBJECTSTOREX_TEST_WEBDAV_URL=http://$HOST:$WEBDAV_PORT" \
    "OBJECTSTOREX_TEST_REQUIRE=s3,azure,webdav" \
    "OBJECTSTOREX_TEST_PYTHON=$VENV_PYTHON"; do
    name="${pair%%=*}" value="${pair#*=}"
    # Quote only when needed (e.g. a tools directory with spaces), so the output stays readable.
    if [[ "$value" =~ ^[A-Za-z0-9_./:,@+=-]*$ ]]; then
      printf 'export %s=%s\n' "$name" "$value"
    else
      printf 'export %s=%q\n' "$name" "$value"
    fi
  done
}

for port in "$S3_PORT" "$AZURE_PORT" "$WEBDAV_PORT"; do
  [[ "$port" =~ ^[0-9]+$ ]] || die "not a port number: $port"
done

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
