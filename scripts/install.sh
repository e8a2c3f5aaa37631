#!/usr/bin/env bash
# Installs what ObjectStoreX needs and is missing; safe to run again (a second run is instant).
#
#   scripts/install.sh                 Elixir/Erlang from Debian, checks the Rust toolchain
#   scripts/install.sh --test-servers  also the loopback test servers: ministack (S3) and boto3 in
#                                      a venv, Azurite (Azure Blob) from npm, rclone (WebDAV)
#   scripts/install.sh --bench         also the Debian packages bench/run.sh uses (GNU time,
#                                      python3 with venv); bench/run.sh installs the rest
#
# Only Debian apt, PyPI, npm and crates.io are reachable here, and hex.pm is not: nothing below
# uses Hex or touches MIX_HOME. Tools that are not system packages go to a cache directory,
# ${OBJECTSTOREX_TOOLS_DIR:-$HOME/.cache/objectstorex-tools}, shared by every clone.
set -euo pipefail

readonly MINISTACK_VERSION="1.5.33"
readonly AZURITE_VERSION="3.37.0"
readonly MIN_RUST="1.91"

TOOLS_DIR="${OBJECTSTOREX_TOOLS_DIR:-$HOME/.cache/objectstorex-tools}"
VENV_DIR="$TOOLS_DIR/venv"
NPM_DIR="$TOOLS_DIR/npm"

log() { printf '==> install: %s\n' "$*" >&2; }
die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  echo "usage: $0 [--test-servers] [--bench]" >&2
  exit 2
}

with_test_servers=false
with_bench=false
for arg in "$@"; do
  case "$arg" in
    --test-servers) with_test_servers=true ;;
    --bench) with_bench=true ;;
    -h | --help) usage ;;
    *)
      echo "install.sh: unknown argument: $arg" >&2
      usage
      ;;
  esac
done

# --- Debian packages ------------------------------------------------------------------------
# Elixir 1.14 / OTP 25 from bookworm. Debian splits OTP into one package per application, and
# the library needs crypto, inets, ssl (+ public_key), runtime_tools, os_mon at run time.
apt_wanted=(
  elixir erlang-dev erlang-xmerl erlang-inets erlang-ssl erlang-crypto erlang-public-key
  erlang-os-mon erlang-runtime-tools erlang-tools
)
command -v curl >/dev/null 2>&1 || apt_wanted+=(curl ca-certificates)
if $with_test_servers || $with_bench; then
  # A fresh machine is said to have python3; fall back to Debian's if it does not.
  command -v python3 >/dev/null 2>&1 || apt_wanted+=(python3)
  # Debian's own python3 needs python3-venv for `python3 -m venv` (ensurepip).
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_wanted+=(python3-venv)
  fi
fi
if $with_test_servers; then
  apt_wanted+=(rclone)
  command -v node >/dev/null 2>&1 || apt_wanted+=(nodejs)
  command -v npm >/dev/null 2>&1 || apt_wanted+=(npm)
fi
# GNU time: the bench takes each process's peak RSS through it; rclone is a contender of the
# sync benchmark.
$with_bench && apt_wanted+=(time rclone)

apt_missing=()
for pkg in "${apt_wanted[@]}"; do
  # dpkg-query fails for a package it has never seen; either way it is not installed.
  status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == "installed" ]] || apt_missing+=("$pkg")
done

if ((${#apt_missing[@]} > 0)); then
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: ${apt_missing[*]}"
  sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo; install by hand: ${apt_missing[*]}"
    sudo=(sudo)
  fi
  log "apt-get install ${apt_missing[*]}"
  # noninteractive: CI runs without a terminal or stdin.
  export DEBIAN_FRONTEND=noninteractive
  # Lock timeout: wait for another apt/dpkg run (e.g. unattended upgrades) instead of failing.
  apt_opts=(-q -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)
  "${sudo[@]}" apt-get "${apt_opts[@]}" update
  "${sudo[@]}" apt-get "${apt_opts[@]}" install -y --no-install-recommends "${apt_missing[@]}" </dev/null
else
  log "Debian packages present (elixir $(dpkg-query -W -f='${Version}' elixir))"
fi

# --- Rust toolchain -------------------------------------------------------------------------
# rustup's installer is not reachable from here, so only check and explain.
if ! command -v cargo >/dev/null 2>&1; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    die "cargo is installed in $HOME/.cargo/bin but not on PATH: run '. \"\$HOME/.cargo/env\"' (or add \$HOME/.cargo/bin to PATH) and retry"
  fi
  die "cargo not found: install the Rust toolchain (rustup, Rust >= $MIN_RUST) and put cargo on PATH"
fi
rustc_version="$(rustc --version 2>/dev/null | awk '{print $2}')"
[[ -n "$rustc_version" ]] || die "cargo found but rustc is not: install the Rust toolchain (Rust >= $MIN_RUST)"
# sort -V puts the smaller version first: it must be MIN_RUST.
if [[ "$(printf '%s\n%s\n' "$MIN_RUST" "${rustc_version%%-*}" | sort -V | head -n1)" != "$MIN_RUST" ]]; then
  die "rustc $rustc_version is too old: ObjectStoreX needs Rust >= $MIN_RUST (rustler 0.39)"
fi
log "Rust toolchain present (rustc $rustc_version)"

if ! $with_test_servers; then
  exit 0
fi

# The test suite also runs cargo fmt and clippy: they are rustup components.
for component in fmt clippy; do
  cargo "$component" --version >/dev/null 2>&1 ||
    die "'cargo $component' is missing: run 'rustup component add rustfmt clippy'"
done

mkdir -p "$TOOLS_DIR"

# --- ministack (S3) + boto3 (scripts/s3_list_multipart.py uses it), in a venv ---------------
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
ensure_venv "$VENV_DIR" "ministack==$MINISTACK_VERSION" boto3 ||
  die "ministack/boto3 install in $VENV_DIR did not work (remove that directory and retry)"
log "ministack $MINISTACK_VERSION + boto3 present in $VENV_DIR"

# --- Azurite (Azure Blob) from npm ----------------------------------------------------------
azurite_version() {
  node -p "require(process.argv[1]).version" "$NPM_DIR/node_modules/azurite/package.json" 2>/dev/null || true
}

if [[ "$(azurite_version)" == "$AZURITE_VERSION" && -e "$NPM_DIR/node_modules/.bin/azurite-blob" ]]; then
  log "azurite $AZURITE_VERSION present in $NPM_DIR"
else
  log "installing azurite@$AZURITE_VERSION into $NPM_DIR"
  mkdir -p "$NPM_DIR"
  # --prefix keeps it out of any package.json of the caller; exact version, no audit/fund calls.
  npm install --prefix "$NPM_DIR" --save-exact --no-audit --no-fund --loglevel=error \
    "azurite@$AZURITE_VERSION" </dev/null
  [[ "$(azurite_version)" == "$AZURITE_VERSION" ]] || die "azurite@$AZURITE_VERSION install in $NPM_DIR did not work"
fi

command -v rclone >/dev/null 2>&1 || die "rclone is missing after apt-get install"
log "rclone present ($(rclone version 2>/dev/null | head -n1))"
log "done (tools in $TOOLS_DIR)"
