#!/usr/bin/env bash
# Bounded fuzzing, part of `make test`: each cargo-fuzz target (fuzz/) runs from its seeds
# (fuzz/seeds/<target>, plus the example app's migrations/) for FUZZ_RUNS inputs or
# FUZZ_SECONDS, whichever ends first. A panic, or a rejection that is not a bad-input error
# with a message, fails the run with the input that caused it (saved under fuzz/artifacts/).
# Longer runs: FUZZ_SECONDS=3600 FUZZ_RUNS=-1 scripts/fuzz.sh (FUZZ_RUNS=-1: no input limit).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
runs="${FUZZ_RUNS:-20000}"
seconds="${FUZZ_SECONDS:-60}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is missing: scripts/setup-test.sh installs it (cargo install cargo-fuzz)" >&2
  exit 2
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: libFuzzer needs the nightly toolchain: rustup toolchain install nightly --profile minimal" >&2
  exit 2
fi
for target in migration_file profile_json; do
  work=$(mktemp -d)
  cp seeds/"$target"/* "$work"/
  # The example app's migrations seed the parser too.
  [ "$target" = migration_file ] && cp ../migrations/*.sql "$work"/
  log=$(mktemp)
  if ! cargo +nightly fuzz run "$target" "$work" -- -runs="$runs" -max_total_time="$seconds" >"$log" 2>&1; then
    # The property that failed, then the end of libFuzzer's report.
    grep -A 2 "panicked at" "$log" | head -n 6 >&2 || true
    tail -n 40 "$log" >&2
    echo "fuzz: $target failed (the input is under fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  echo "fuzz: $target: $(grep -E '^(#[0-9]+|Done)' "$log" | tail -n 1)"
  rm -rf "$work" "$log"
done
