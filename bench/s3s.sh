# Sourced by bench/run.sh and bench/sync.sh: the S3 server both benchmarks run against, s3s-fs
# on 127.0.0.1 with fixed bench credentials, built by build_s3s from bench/s3s-server (s3s-fs's
# file system, served with TCP_NODELAY as S3 services are: see its main.rs). Needs ROOT,
# TOOLS_DIR, log and die from the sourcing script; the caller's EXIT trap calls stop_s3s.

S3S_FS_VERSION="0.14.1" # as pinned in bench/s3s-server/Cargo.toml
S3S_TARGET="$TOOLS_DIR/s3s-server"
S3S_FS="$S3S_TARGET/release/objectstorex-bench-s3s"

# A Rust build of a few minutes the first time, a no-op after.
build_s3s() {
  [[ -x "$S3S_FS" ]] || log "building bench/s3s-server (s3s-fs $S3S_FS_VERSION; a few minutes, once)"
  # Its own target directory, not the project's.
  env -u CARGO_TARGET_DIR cargo build --release --locked --quiet \
    --manifest-path "$ROOT/bench/s3s-server/Cargo.toml" --target-dir "$S3S_TARGET" ||
    die "bench/s3s-server did not build"
  log "S3 server: bench/s3s-server, s3s-fs $S3S_FS_VERSION with TCP_NODELAY"
}

export AWS_ACCESS_KEY_ID="objectstorex-bench"
export AWS_SECRET_ACCESS_KEY="objectstorex-bench-secret"
s3s_pid=""

# start_s3s PORT DATA_DIR BUCKET LOG_FILE PORT_VARIABLE: serves DATA_DIR (emptied, with BUCKET
# made in it) and returns once the port answers. PORT_VARIABLE names the setting that picks
# the port, for the message when it is taken.
start_s3s() {
  local port="$1" data="$2" bucket="$3" log_file="$4" port_variable="$5"
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port on 127.0.0.1 is taken: set $port_variable to a free one"
  fi
  rm -rf "$data"
  mkdir -p "$data/$bucket"
  "$S3S_FS" --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" \
    --secret-key "$AWS_SECRET_ACCESS_KEY" "$data" >"$log_file" 2>&1 &
  s3s_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$s3s_pid" 2>/dev/null || die "s3s-fs exited at start (see $log_file)"
    sleep 0.1
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "s3s-fs is not listening on $port"
  log "s3s-fs $S3S_FS_VERSION on 127.0.0.1:$port (data in $data)"
}

stop_s3s() {
  if [[ -n "$s3s_pid" ]] && kill -0 "$s3s_pid" 2>/dev/null; then
    kill "$s3s_pid" 2>/dev/null || true
    wait "$s3s_pid" 2>/dev/null || true
  fi
}
