#!/usr/bin/env bash
# Builds the six tools as Windows programs (x86_64-pc-windows-gnu, the `windows-smoke` profile:
# debug, no dependency optimized; warnings are errors, as clippy's are on Linux) and what
# running them under wine needs: the bcryptprimitives.dll stand-in (wine 8 lacks it; see
# bcryptprimitives.c) beside the .exe files, the test-only `file_access` example (reads a file's
# access list back), and a wine prefix of the project's own under target/wine-prefix.
# `make test` runs it before the Windows smoke suite (tests/tests/windows.rs);
# scripts/setup-test.sh installs the rust target, mingw-w64 and wine.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=x86_64-pc-windows-gnu
target_dir=${CARGO_TARGET_DIR:-target}
profile=windows-smoke
out="$target_dir/$target/$profile"

missing=()
rustup target list --installed 2>/dev/null | grep -qx "$target" || missing+=("the rust target $target (rustup target add $target)")
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=("mingw-w64 (apt-get install -y mingw-w64)")
command -v wine >/dev/null || missing+=("wine (apt-get install -y wine wine64)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'windows build: missing %s\n' "${missing[@]}" >&2
  echo "windows build: bash scripts/setup-test.sh installs them" >&2
  exit 1
fi

# pg_query's bindgen parses its C headers for the target: clang needs mingw-w64's triple and
# include directories (gcc's own headers first, then the sysroot's).
gcc_include=$(dirname "$(x86_64-w64-mingw32-gcc -print-libgcc-file-name)")/include
export BINDGEN_EXTRA_CLANG_ARGS_x86_64_pc_windows_gnu="--target=x86_64-w64-mingw32 -I$gcc_include -I/usr/x86_64-w64-mingw32/include"

started=$SECONDS
# -D warnings for this target only: code written for Unix alone shows up here first (an unused
# variable, a dead function). Dependencies keep their own lints (cargo caps them).
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-D warnings"
cargo build --target "$target" --profile "$profile" --workspace --bins --example file_access
mkdir -p "$out"
x86_64-w64-mingw32-gcc -shared -O2 -o "$out/bcryptprimitives.dll" \
  scripts/windows/bcryptprimitives.c scripts/windows/bcryptprimitives.def -ladvapi32
cp "$out/examples/file_access.exe" "$out/file_access.exe"

# The prefix is made once (wineboot, ~10 s); the tests then share it. No Mono/Gecko prompts.
export WINEPREFIX="$PWD/$target_dir/wine-prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  wine cmd /c exit >/dev/null 2>&1 || true
  wineserver -w
fi
echo "windows build: $out/*.exe in $((SECONDS - started)) s (wine prefix $WINEPREFIX)" >&2
