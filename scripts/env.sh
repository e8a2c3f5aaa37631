# Sourced by the project's scripts (test.sh, bench/run.sh, examples/main_job.sh): what they
# need from the environment in a bare, non-login shell such as CI's.

# rustup puts cargo in ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# The BEAM wants a UTF-8 locale (file names, IO); a bare environment may have none set.
if [[ "$(locale charmap 2>/dev/null || true)" != "UTF-8" ]]; then
  export LC_ALL=C.UTF-8 LANG=C.UTF-8
fi
