#!/usr/bin/env python3
"""dbseed against psql's \\copy, and what the guard costs in round trips, in one run.

Seeding: ROWS generated CSV rows (id,handle,score,note) loaded into an empty table by
  - dbseed apply      (release build; the file is one seed, checksummed, with its record)
  - psql \\copy        (the floor: what a user would type, nothing of ours in the way)
three interleaved rounds, median, table emptied (and the seed record cleared) before each.

The guard: client->server turns through scripts/bench/latency_proxy.py, connect and TLS
included, for `dbguard check --action write` (connect, then one query reading the stamp) against
`psql -c 'select 1'` (connect, then one query), and for `dbguard check --action read`.

    python3 scripts/bench/seed.py [--rows 1000000]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migrate import REPO, Proxy, sh  # noqa: E402  (the same helpers as the migration bench)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    a = ap.parse_args()
    sh(["cargo", "build", "--release", "-q", "-p", "dbseed", "-p", "dbenv", "-p", "dbguard"], cwd=REPO)
    sh(["cargo", "build", "-q", "-p", "rdsprov"], cwd=REPO)
    sh(["bash", "scripts/setup-test.sh"], cwd=REPO)
    work = tempfile.mkdtemp(prefix="dbtools-bench-", dir="/var/tmp")
    os.chmod(work, 0o755)
    env = dict(os.environ, DBTOOLS_STATE_DIR=os.path.join(work, "state"), DBTOOLS_CONFIG=os.path.join(work, "dbtools.toml"))
    with open(env["DBTOOLS_CONFIG"], "w") as f:
        f.write('[env.bench]\nprotection = "open"\ninstance = "dbtools-bench"\ndatabase = "bench"\nuser = "bench_app"\n'
                '[instance.dbtools-bench]\nprovider = "local"\n')
    release, debug = os.path.join(REPO, "target", "release"), os.path.join(REPO, "target", "debug")
    try:
        sh([os.path.join(debug, "rdsprov"), "apply"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        profile_text = sh([os.path.join(release, "dbenv"), "resolve", "bench"], env=env, capture_output=True, text=True).stdout
        conn = json.loads(profile_text)["conn"]
        # Profiles carry no password: asked for by name, the way a user gets it for psql.
        exported = sh([os.path.join(release, "dbenv"), "export", "bench", "--format", "url"], env=env,
                      capture_output=True, text=True).stdout.strip()
        password = urllib.parse.unquote(urllib.parse.urlsplit(exported).password or "")
        psql_env = dict(env, PGHOST=conn["host"], PGPORT=str(conn["port"]), PGDATABASE=conn["dbname"], PGUSER=conn["user"],
                        PGPASSWORD=password, PGSSLMODE="verify-full", PGSSLROOTCERT=conn["sslrootcert"])

        def psql(sql, port=None):
            e = dict(psql_env, PGPORT=str(port)) if port else psql_env
            return sh(["psql", "-XqAt", "-v", "ON_ERROR_STOP=1", "-c", sql], env=e, capture_output=True, text=True).stdout

        psql("CREATE TABLE bench_rows (id bigint PRIMARY KEY, handle text NOT NULL, score int, note text)")
        seeds = os.path.join(work, "seeds", "common")
        os.makedirs(seeds)
        csv = os.path.join(seeds, "bench_rows.csv")
        with open(csv, "w") as f:
            f.write("id,handle,score,note\n")
            for i in range(1, a.rows + 1):
                f.write(f"{i},user_{i},{i % 1000},\"note {i}, with a comma\"\n")
        size_mb = os.path.getsize(csv) / 1e6

        def empty():
            psql("TRUNCATE bench_rows; DELETE FROM dbtools.seeds;")

        def run(tool):
            if tool == "dbseed":
                argv = [os.path.join(release, "dbseed"), "--dir", os.path.dirname(seeds), "apply"]
                start = time.perf_counter()
                subprocess.run(argv, env=env, input=profile_text, capture_output=True, text=True, check=True)
            else:
                start = time.perf_counter()
                psql(f"\\copy bench_rows (id, handle, score, note) from '{csv}' csv header")
            elapsed = time.perf_counter() - start
            loaded = int(psql("SELECT count(*) FROM bench_rows"))
            if loaded != a.rows:
                sys.exit(f"bench: {tool} loaded {loaded} rows, expected {a.rows}")
            return elapsed

        tools = ["dbseed", "psql \\copy (floor)"]
        empty()
        run("dbseed")  # untimed: warm caches
        samples = {t: [] for t in tools}
        for _ in range(3):
            for tool in tools:
                empty()
                samples[tool].append(run(tool))
                print(f"bench: {tool:20} {samples[tool][-1]:.2f} s", file=sys.stderr)
        median = {t: statistics.median(samples[t]) for t in tools}

        turns = {}
        for label, argv, stdin, e in [
            ("dbguard check --action write", [os.path.join(release, "dbguard"), "check", "--action", "write"], True, env),
            ("dbguard check --action read", [os.path.join(release, "dbguard"), "check", "--action", "read"], True, env),
            ("psql -c 'select 1'", ["psql", "-XqAt", "-c", "select 1"], False, psql_env),
        ]:
            proxy = Proxy(conn["port"], 1)
            if stdin:
                # Pointing elsewhere than dbtools.toml says, the profile takes libpq's PGPASSWORD
                # (the config's secret is sent only where the config points).
                p = json.loads(profile_text)
                p["conn"]["port"] = proxy.port
                p["secret"] = {"source": "env", "ref": "PGPASSWORD"}
                subprocess.run(argv, env=dict(e, PGPASSWORD=password), input=json.dumps(p), capture_output=True, text=True, check=True)
            else:
                subprocess.run(argv, env=dict(e, PGPORT=str(proxy.port)), capture_output=True, text=True, check=True)
            turns[label] = proxy.stop()

        print(f"\n{a.rows:,} CSV rows ({size_mb:.0f} MB) into an empty table with a primary key, median of 3:\n")
        print("| tool | time | rows/s | x psql's throughput |")
        print("|---|---|---|---|")
        for tool in tools:
            print(f"| {tool} | {median[tool]:.2f} s | {a.rows / median[tool]:,.0f} | {median[tools[1]] / median[tool]:.2f} |")
        print("\nclient->server turns (connect and TLS included):\n")
        for label, count in turns.items():
            print(f"- {label}: {count}")
    finally:
        subprocess.run([os.path.join(debug, "rdsprov"), "destroy", "--env", "bench"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
