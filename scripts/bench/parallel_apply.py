#!/usr/bin/env python3
"""`rdsprov apply` of several envs: at once, not one after the other. On AWS an instance takes
minutes to become available; here the project's AWS fault proxy (tests/support/aws_fault_proxy.py)
plays that pace in front of moto's server: each new instance reads `creating` for HOLD seconds
after its CreateDBInstance (moto itself answers `available` at once). Three runs, each on a
fresh moto:

  floor          `apply` of one env: HOLD plus rdsprov's own calls — what any env costs
  one at a time  three `apply --env E` runs in a row: what a tool that applies envs one after
                 the other costs (rdsprov before it ran envs at once)
  at once        one `apply` of the three envs

The at-once run should take about the floor, not three times it. Ratios from one run; polling
every 0.5 s (RDSPROV_POLL_SECONDS). A benchmark, not a test:
    python3 scripts/bench/parallel_apply.py          # HOLD=20 by default: BENCH_HOLD_SECONDS
"""
import json
import os
import socket
import subprocess
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HOLD = float(os.environ.get("BENCH_HOLD_SECONDS", "20"))
ENVS = ("dev", "test", "stage")
SPEC = "".join(f'[env.{env}]\nid = "bench-{env}"\nclass = "db.t4g.micro"\n' for env in ENVS)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def timed(rdsprov, spec, env, runs):
    started = time.monotonic()
    for args in runs:
        subprocess.run([rdsprov, "apply", "--spec", spec] + args, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def main():
    subprocess.run(["cargo", "build", "-q", "-p", "rdsprov"], cwd=REPO, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    rdsprov = os.path.join(target, "debug", "rdsprov")
    work = tempfile.mkdtemp(prefix="dbtools-bench-apply-")
    spec = os.path.join(work, "rds.toml")
    with open(spec, "w") as f:
        f.write('region = "eu-west-1"\n' + SPEC)
    results = {}
    for name, runs in (
        ("floor", [["--env", "dev"]]),
        ("one at a time", [["--env", env] for env in ENVS]),
        ("at once", [[]]),
    ):
        moto_port, proxy_port = free_port(), free_port()
        moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(moto_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rules = [{"operation": "DescribeDBInstances", "hold": "creating", "seconds": HOLD}]
        proxy = subprocess.Popen(["python3", os.path.join(REPO, "tests", "support", "aws_fault_proxy.py"),
                                  str(proxy_port), f"http://127.0.0.1:{moto_port}", json.dumps(rules),
                                  os.path.join(work, f"requests-{len(results)}.log")])
        try:
            wait_for_port(moto_port)
            wait_for_port(proxy_port)
            env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy_port}",
                       AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                       AWS_REGION="eu-west-1", AWS_EC2_METADATA_DISABLED="true",
                       RDSPROV_POLL_SECONDS="0.5")
            results[name] = timed(rdsprov, spec, env, runs)
        finally:
            proxy.kill()
            moto.kill()
            proxy.wait()
            moto.wait()
    floor = results["floor"]
    print(f"rdsprov apply, {len(ENVS)} envs, each instance `creating` for {HOLD:g} s (debug build)")
    for name, seconds in results.items():
        print(f"  {name:14} {seconds:6.1f} s   {seconds / floor:4.2f}x the floor")


if __name__ == "__main__":
    main()
