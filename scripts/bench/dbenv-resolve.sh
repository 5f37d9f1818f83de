#!/usr/bin/env bash
# How long `dbenv resolve dev` takes from start to exit with the local secret store, against the
# floor of starting any process at all (/bin/true), measured in the same run: 500 runs each,
# interleaved, median and p90. Release build; a throwaway local dev instance in a temp state dir.
#   bash scripts/bench/dbenv-resolve.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p dbenv
cargo build -q -p rdsprov   # only provisions the instance; debug is fine
state=$(mktemp -d /var/tmp/dbtools-bench.XXXXXX)
chmod 755 "$state"
export DBTOOLS_STATE_DIR="$state" DBTOOLS_CONFIG="$PWD/dbtools.toml"
trap 'target/debug/rdsprov destroy --env dev >/dev/null 2>&1 || true; rm -rf "$state"' EXIT
target/debug/rdsprov apply --env dev >/dev/null 2>&1
python3 - <<'PY'
import statistics, subprocess, time
commands = {"dbenv resolve dev": ["target/release/dbenv", "resolve", "dev"], "/bin/true (floor)": ["/bin/true"]}
samples = {name: [] for name in commands}
for _ in range(20):
    for argv in commands.values():
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
for _ in range(500):
    for name, argv in commands.items():
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        samples[name].append((time.perf_counter() - start) * 1000)
floor = statistics.median(samples["/bin/true (floor)"])
print(f"{'command':<22} {'median ms':>10} {'p90 ms':>8} {'x floor':>8}")
for name, values in samples.items():
    values.sort()
    median = statistics.median(values)
    print(f"{name:<22} {median:>10.2f} {values[int(len(values) * 0.9)]:>8.2f} {median / floor:>8.2f}")
PY
