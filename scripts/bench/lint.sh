#!/usr/bin/env bash
# How long `dbguard lint FILE` takes on big files, release build: 40,000 INSERTs (a large seed),
# and 40,000 mixed statements (DDL, UPDATE/DELETE with and without WHERE, function calls, a
# CTE, PL/pgSQL functions and DO blocks every few hundred statements, a finding in every
# tenth). The lint is linear; both should take well under a second. The floor is the same file
# through pg_query's parser alone (one parse, one thread, nothing judged: shared/examples/
# parse_floor.rs). Seven runs each, interleaved; min and median elapsed. A benchmark, not a test:
#   bash scripts/bench/lint.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p dbguard
cargo build --release -q -p dbtools-shared --features sql --example parse_floor
bin="${CARGO_TARGET_DIR:-target}/release/dbguard"
floor="${CARGO_TARGET_DIR:-target}/release/examples/parse_floor"
work=$(mktemp -d /var/tmp/dbtools-lint-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
n=40000

awk -v n="$n" 'BEGIN {
    print "create table if not exists agents (id bigint primary key, handle text, note text);"
    for (i = 1; i <= n; i++)
        printf "insert into agents (id, handle, note) values (%d, '\''agent_%d'\'', '\''seeded; with -- and /* inside */'\'') on conflict (id) do nothing;\n", i, i
}' > "$work/inserts.sql"

awk -v n="$n" 'BEGIN {
    print "create table items (id bigint primary key, n int not null default 0, at timestamptz default now());"
    for (i = 1; i <= n; i++) {
        k = i % 10
        if (k == 0) printf "delete from items;\n"
        else if (k == 1) printf "update items set n = n + 1, at = now() where id = %d;\n", i
        else if (k == 2) printf "insert into items (id, n) values (%d, length(md5('\''%d'\''))) on conflict (id) do update set n = excluded.n;\n", i, i
        else if (k == 3) printf "with moved as (update items set n = 0 where id = %d returning id) select count(*) from moved;\n", i
        else if (k == 4) printf "create index concurrently if not exists items_n_%d on items (n);\n", i
        else if (k == 5) printf "select set_config('\''app.batch'\'', '\''%d'\'', true), nextval('\''items_seq'\'');\n", i
        else if (k == 6) printf "comment on table items is '\''batch %d'\'';\n", i
        else if (k == 7 && i % 500 == 7) printf "create or replace function f_%d() returns trigger language plpgsql as $$\nbegin\n  update items set n = n + 1 where id = new.id;\n  return new;\nend $$;\n", i
        else if (k == 8 && i % 500 == 8) printf "do $$ begin perform pg_advisory_xact_lock(%d); update items set n = 1 where id = %d; end $$;\n", i, i
        else printf "delete from items where id = %d and n < 0;\n", i
    }
}' > "$work/mixed.sql"

# Seven interleaved runs of `dbguard lint FILE` and of the floor; min and median elapsed,
# and their ratio.
measure() {
    local file=$1 i
    "$bin" lint "$file" >/dev/null 2>&1 || true   # warm the page cache
    for i in 1 2 3 4 5 6 7; do
        /usr/bin/time -f "%e" -a -o "$work/lint.times" "$bin" lint "$file" >/dev/null 2>&1 || true
        /usr/bin/time -f "%e" -a -o "$work/floor.times" "$floor" "$file" >/dev/null 2>&1
    done
    python3 - "$work/lint.times" "$work/floor.times" <<'PY'
import statistics, sys
lint, floor = ([float(l) for l in open(p) if l[:1].isdigit()] for p in sys.argv[1:3])
print(f"lint min {min(lint):.2f} s, median {statistics.median(lint):.2f} s; "
      f"floor (parse only) min {min(floor):.2f} s, median {statistics.median(floor):.2f} s; "
      f"ratio of medians {statistics.median(lint) / statistics.median(floor):.2f}")
PY
    rm -f "$work/lint.times" "$work/floor.times"
}
printf '%-40s %s\n' "40,000 INSERTs ($(wc -c <"$work/inserts.sql") bytes):" "$(measure "$work/inserts.sql")"
printf '%-40s %s\n' "40,000 mixed statements ($(wc -l <"$work/mixed.sql") lines):" "$(measure "$work/mixed.sql")"
"$bin" lint "$work/mixed.sql" 2>/dev/null | python3 -c 'import json,sys,collections; r=json.load(sys.stdin); print("mixed findings by rule:", dict(collections.Counter(f["rule"] for f in r["findings"])))' || true
