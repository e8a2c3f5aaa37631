# Sourced by install.sh and bench/run.sh.
#
# ensure_venv DIR REQUIREMENT...: makes DIR a Python venv that holds every REQUIREMENT (a
# "name==version" pin or a bare name), creating or completing it with pip when it does not.
# Returns non-zero if that did not work.
ensure_venv() {
  local dir="$1"
  shift
  venv_has "$dir" "$@" && return 0
  printf '==> installing %s into %s\n' "$*" "$dir" >&2
  # A venv whose python no longer runs (its base interpreter moved) is rebuilt from scratch.
  if ! "$dir/bin/python" -c 'pass' >/dev/null 2>&1; then
    rm -rf "$dir"
    python3 -m venv "$dir" || return 1
  fi
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@" </dev/null || return 1
  venv_has "$dir" "$@"
}

venv_has() {
  local dir="$1"
  shift
  "$dir/bin/python" - "$@" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

for requirement in sys.argv[1:]:
    name, _, wanted = requirement.partition("==")
    try:
        if version(name) != (wanted or version(name)):
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
}
