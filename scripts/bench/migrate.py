#!/usr/bin/env python3
"""dbmigrate against dbmate, sqlx-cli and the floor, in one run.

N generated migrations (CREATE TABLE + CREATE INDEX each) are applied to an empty database by
  - dbmigrate up            (release build)
  - dbmate migrate          (npm package dbmate, installed by scripts/setup-test.sh)
  - sqlx migrate run        (sqlx-cli 0.9, `cargo install`ed into .bench-tools/ when missing)
  - the floor: psql sending the same SQL as one message (each migration in its own BEGIN/COMMIT)
first through scripts/bench/latency_proxy.py (--delay-ms each way, like home -> RDS, counting
client->server turns, connect and TLS included), then on loopback. Then `status` with all N
applied: dbmigrate against dbmate (median of 5). The database is a local-provider instance
(TLS verify-full, scram-sha-256), as the app role, reset between tools.

    python3 scripts/bench/migrate.py [--count 500] [--delay-ms 5]

Times are medians of five interleaved runs (this VM's disk makes single runs vary by 2x), except
dbmate and sqlx-cli: medians of three on loopback and one run through the proxy.
"""
import argparse, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROXY = os.path.join(REPO, "scripts", "bench", "latency_proxy.py")
DBMATE = os.path.join(REPO, "node_modules", ".bin", "dbmate")
SQLX = os.path.join(REPO, ".bench-tools", "bin", "sqlx")


def sh(argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_tools():
    sh(["cargo", "build", "--release", "-q", "-p", "dbmigrate", "-p", "dbenv"], cwd=REPO)
    sh(["cargo", "build", "-q", "-p", "rdsprov"], cwd=REPO)
    sh(["bash", "scripts/setup-test.sh"], cwd=REPO)
    if not os.path.exists(SQLX):
        print("bench: installing sqlx-cli 0.9 into .bench-tools (one time, several minutes)", file=sys.stderr)
        sh(["cargo", "install", "sqlx-cli@0.9.0", "--locked", "--no-default-features",
            "--features", "postgres,native-tls", "--root", os.path.join(REPO, ".bench-tools")])


def generate(work, count):
    dbmate_dir, sqlx_dir = os.path.join(work, "dbmate"), os.path.join(work, "sqlx")
    os.makedirs(dbmate_dir)
    os.makedirs(sqlx_dir)
    floor = []
    for n in range(1, count + 1):
        version = f"2026010100{n:04d}"
        body = f"CREATE TABLE bench_{n} (id bigint PRIMARY KEY, note text, created_at timestamptz DEFAULT now());\n" \
               f"CREATE INDEX bench_{n}_note ON bench_{n} (note);\n"
        with open(os.path.join(dbmate_dir, f"{version}_bench_{n}.sql"), "w") as f:
            f.write(f"-- migrate:up\n{body}\n-- migrate:down\nDROP TABLE bench_{n};\n")
        with open(os.path.join(sqlx_dir, f"{version}_bench_{n}.sql"), "w") as f:
            f.write(body)
        floor.append(f"BEGIN;\n{body}COMMIT;\n")
    return dbmate_dir, sqlx_dir, "".join(floor)


class Proxy:
    """latency_proxy.py in front of `target_port`, started and ready; stop() returns its turns."""

    def __init__(self, target_port, delay_ms):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, PROXY, "--listen", f"127.0.0.1:{self.port}", "--target", f"127.0.0.1:{target_port}",
             "--delay-ms", str(delay_ms), "--count"], stderr=subprocess.PIPE, text=True)
        # Ready when it says so (a probe connection would be a connection of its own).
        if self.proc.stderr.readline().strip() != "listening":
            sys.exit("bench: the latency proxy did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        err = self.proc.communicate(timeout=30)[1]
        turns = [l for l in err.splitlines() if l.startswith("turns=")]
        return int(turns[-1].split("=")[1]) if turns else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--delay-ms", type=float, default=5)
    a = ap.parse_args()
    prepare_tools()
    work = tempfile.mkdtemp(prefix="dbtools-bench-", dir="/var/tmp")
    os.chmod(work, 0o755)
    env = dict(os.environ, DBTOOLS_STATE_DIR=os.path.join(work, "state"), DBTOOLS_CONFIG=os.path.join(work, "dbtools.toml"))
    with open(env["DBTOOLS_CONFIG"], "w") as f:
        f.write('[env.bench]\ninstance = "dbtools-bench"\ndatabase = "bench"\nuser = "bench_app"\n'
                '[instance.dbtools-bench]\nprovider = "local"\n')
    release, debug = os.path.join(REPO, "target", "release"), os.path.join(REPO, "target", "debug")
    try:
        sh([os.path.join(debug, "rdsprov"), "apply"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        profile = json.loads(sh([os.path.join(release, "dbenv"), "resolve", "bench"], env=env, capture_output=True).stdout)
        conn = profile["conn"]
        # Profiles carry no password: asked for by name, the way a user gets it for psql.
        exported = sh([os.path.join(release, "dbenv"), "export", "bench", "--format", "url"], env=env,
                      capture_output=True, text=True).stdout.strip()
        password = urllib.parse.unquote(urllib.parse.urlsplit(exported).password or "")
        dbmate_dir, sqlx_dir, floor_sql = generate(work, a.count)

        def url(port, with_password=True):
            auth = f"{conn['user']}:{password}" if with_password else conn["user"]
            return f"postgres://{auth}@127.0.0.1:{port}/{conn['dbname']}?sslmode=verify-full&sslrootcert={conn['sslrootcert']}"

        def reset():
            sh(["psql", url(conn["port"], False), "-XqAt", "-c", "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"],
               env=dict(env, PGPASSWORD=password), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def command(tool, port):
            # Through the proxy the profile points elsewhere than dbtools.toml says, so the
            # config's secret is not sent there; the password comes as libpq's PGPASSWORD.
            p = dict(profile, conn=dict(conn, port=port), secret={"source": "env", "ref": "PGPASSWORD"})
            if tool == "dbmigrate":
                return [os.path.join(release, "dbmigrate"), "--dir", dbmate_dir, "up"], dict(env, PGPASSWORD=password), json.dumps(p)
            if tool == "dbmate":
                return [DBMATE, "--no-dump-schema", "--migrations-dir", dbmate_dir, "migrate"], dict(env, DATABASE_URL=url(port)), None
            if tool == "sqlx-cli":
                return [SQLX, "migrate", "run", "--source", sqlx_dir], dict(env, DATABASE_URL=url(port)), None
            return ["psql", url(port, False), "-Xq", "-v", "ON_ERROR_STOP=1", "-c", floor_sql], dict(env, PGPASSWORD=password), None

        tools = ["dbmigrate", "dbmate", "sqlx-cli", "floor (psql, one message)"]
        # One untimed run first: a fresh instance's first big batch pays for cold caches.
        reset()
        argv, tool_env, stdin = command("dbmigrate", conn["port"])
        subprocess.run(argv, env=tool_env, input=stdin, capture_output=True, text=True, check=True)
        results = {}
        # The server's fsync times vary from run to run (2x on this VM's disk): seven interleaved
        # rounds of dbmigrate and the floor, each round's ratio of the two, and medians; three
        # rounds of dbmate and sqlx-cli on loopback and one through the proxy, where their
        # ~4,000 and ~2,500 round trips decide their time.
        slow = {"dbmate", "sqlx-cli"}
        paired = {}
        for link in ["proxy", "loopback"]:
            samples = {tool: [] for tool in tools}
            turns_seen = {}
            for round_index in range(7):
                for tool in tools:
                    if tool in slow and (round_index > 2 or (link == "proxy" and round_index > 0)):
                        continue
                    reset()
                    proxy = Proxy(conn["port"], a.delay_ms) if link == "proxy" else None
                    argv, tool_env, stdin = command(tool, proxy.port if proxy else conn["port"])
                    start = time.perf_counter()
                    run = subprocess.run(argv, env=tool_env, input=stdin, capture_output=True, text=True)
                    elapsed = time.perf_counter() - start
                    turns_seen[tool] = proxy.stop() if proxy else None
                    if run.returncode != 0:
                        sys.exit(f"bench: {tool} failed ({run.returncode}): {run.stderr[-2000:]}")
                    samples[tool].append(elapsed)
                    print(f"bench: {link:8} {tool:28} {elapsed:8.2f} s  turns={turns_seen[tool]}", file=sys.stderr)
            for tool in tools:
                results[(link, tool)] = (statistics.median(samples[tool]), turns_seen[tool])
            ratios = [ours / floor for ours, floor in zip(samples[tools[0]], samples[tools[3]])]
            paired[link] = (statistics.median(ratios), len(ratios))

        # status with every migration applied (dbmate's table and ours are the same).
        reset()
        argv, tool_env, stdin = command("dbmigrate", conn["port"])
        subprocess.run(argv, env=tool_env, input=stdin, capture_output=True, text=True, check=True)
        status = {}
        for tool in ["dbmigrate", "dbmate"]:
            samples = []
            for _ in range(5):
                if tool == "dbmigrate":
                    argv = [os.path.join(release, "dbmigrate"), "--dir", dbmate_dir, "status"]
                    tool_env, stdin = dict(env), json.dumps(profile)
                else:
                    argv = [DBMATE, "--migrations-dir", dbmate_dir, "status"]
                    tool_env, stdin = dict(env, DATABASE_URL=url(conn["port"])), None
                start = time.perf_counter()
                subprocess.run(argv, env=tool_env, input=stdin, capture_output=True, text=True, check=True)
                samples.append(time.perf_counter() - start)
            status[tool] = statistics.median(samples)

        print(f"\n{a.count} migrations, latency proxy {a.delay_ms:g} ms each way ({2 * a.delay_ms:g} ms round trip):\n")
        print("| tool | through proxy | turns | turns/migration | on loopback |")
        print("|---|---|---|---|---|")
        for tool in tools:
            (pt, turns), (lt, _) = results[("proxy", tool)], results[("loopback", tool)]
            print(f"| {tool} | {pt:.2f} s | {turns} | {turns / a.count:.2f} | {lt:.2f} s |")
        ours_p, ours_l = results[("proxy", "dbmigrate")][0], results[("loopback", "dbmigrate")][0]
        floor_l = results[("loopback", tools[3])][0]
        print(f"\nthrough the proxy: dbmigrate is {results[('proxy', 'dbmate')][0] / ours_p:.1f}x faster than dbmate, "
              f"{results[('proxy', 'sqlx-cli')][0] / ours_p:.1f}x faster than sqlx-cli")
        print(f"dbmigrate / floor, median of the {paired['proxy'][1]} paired rounds: {paired['proxy'][0]:.2f}x through the proxy, "
              f"{paired['loopback'][0]:.2f}x on loopback; the floor itself is {results[('proxy', 'dbmate')][0] / results[('proxy', tools[3])][0]:.1f}x "
              f"faster than dbmate and {results[('proxy', 'sqlx-cli')][0] / results[('proxy', tools[3])][0]:.1f}x faster than sqlx-cli through the proxy")
        print(f"on loopback (medians): dbmigrate takes {ours_l / floor_l:.2f}x the floor; dbmate {results[('loopback', 'dbmate')][0] / floor_l:.2f}x, "
              f"sqlx-cli {results[('loopback', 'sqlx-cli')][0] / floor_l:.2f}x")
        print(f"status with {a.count} applied (median of 5, loopback): dbmigrate {status['dbmigrate'] * 1000:.0f} ms, "
              f"dbmate {status['dbmate'] * 1000:.0f} ms ({status['dbmigrate'] / status['dbmate']:.2f}x)")
    finally:
        subprocess.run([os.path.join(debug, "rdsprov"), "destroy", "--env", "bench"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
