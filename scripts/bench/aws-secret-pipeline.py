#!/usr/bin/env python3
"""What an AWS-secret env costs a pipeline, now that profiles carry no password and each tool
that connects reads the secret itself. The pipeline is README's
`dbenv resolve dev | dbconnect check | dbmigrate status | dbseed status` (three tools connect),
against a real local PostgreSQL (a throwaway `rdsprov apply` instance) whose app password sits
in AWS Secrets Manager (moto's server on loopback, `aws-sm:` secret), three ways:

  local secret     the same pipeline with the local secret store: the floor, no AWS at all
  aws, cold cache  the state dir's secret cache emptied before each run: one AWS read
  aws, warm cache  the cache filled by the run before (within its 5 minutes): no AWS read

and one `rdsprov secret get` alone (one SDK start-up and one call). The extra cost of the AWS
pipeline over the floor should be about one `rdsprov secret get`, not three. 15 runs of each,
interleaved; medians. The debug build by default (the dev profile optimises dependencies but
the AWS SDK, whose release build takes half an hour on a 2-core machine); BENCH_PROFILE=release
for the release build. A benchmark, not a test:
    python3 scripts/bench/aws-secret-pipeline.py
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNS = 15


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    profile = os.environ.get("BENCH_PROFILE", "debug")
    build = ["cargo", "build", "-q", "--workspace", "--bins"] + (["--release"] if profile == "release" else [])
    subprocess.run(build, cwd=REPO, check=True)
    bin_dir = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), profile)
    state = tempfile.mkdtemp(prefix="dbtools-bench-", dir="/var/tmp")
    os.chmod(state, 0o755)
    port = free_port()
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, DBTOOLS_STATE_DIR=state, DBTOOLS_CONFIG=os.path.join(REPO, "dbtools.toml"),
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="eu-west-1", AWS_EC2_METADATA_DISABLED="true",
               PATH=bin_dir + os.pathsep + os.environ["PATH"])
    for key in ("DBTOOLS_ENV", "PGPASSWORD", "DATABASE_URL"):
        env.pop(key, None)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        subprocess.run([os.path.join(bin_dir, "rdsprov"), "apply", "--env", "dev"], env=env, cwd=REPO,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(state, "secrets", "combine-dev", "combine_app.json")) as f:
            app = json.load(f)
        import boto3
        boto3.client("secretsmanager", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="eu-west-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing").create_secret(
            Name="bench/dev-app", SecretString=json.dumps(app))
        # The same project, dev's secret in Secrets Manager instead of the local store.
        with open(os.path.join(REPO, "dbtools.toml")) as f:
            text = f.read()
        aws_config = os.path.join(state, "dbtools.toml")
        with open(aws_config, "w") as f:
            f.write(text.replace("[env.dev]\n", '[env.dev]\nsecret = "aws-sm:bench/dev-app"\n', 1))
        pipeline = ("dbenv resolve dev | dbconnect check | dbmigrate status --dir migrations"
                    " | dbseed status --dir seeds >/dev/null")
        cache = os.path.join(state, "cache")

        def run(command, config, clear_cache=False):
            if clear_cache:
                shutil.rmtree(cache, ignore_errors=True)
            started = time.perf_counter()
            subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=REPO, check=True,
                           env=dict(env, DBTOOLS_CONFIG=config), stderr=subprocess.DEVNULL)
            return (time.perf_counter() - started) * 1000

        cases = {
            "local secret (floor)": lambda: run(pipeline, env["DBTOOLS_CONFIG"]),
            "aws, cold cache": lambda: run(pipeline, aws_config, clear_cache=True),
            "aws, warm cache": lambda: run(pipeline, aws_config),
            "one rdsprov secret get": lambda: run("rdsprov secret get --json bench/dev-app >/dev/null",
                                                  aws_config),
        }
        for case in cases.values():
            case()
        samples = {name: [] for name in cases}
        for _ in range(RUNS):
            for name, case in cases.items():
                samples[name].append(case())
        medians = {name: statistics.median(values) for name, values in samples.items()}
        floor = medians["local secret (floor)"]
        print(f"{'pipeline (3 of 4 tools connect)':<34} {'median ms':>10} {'over floor ms':>14}")
        for name, median in medians.items():
            print(f"{name:<34} {median:>10.1f} {median - floor:>14.1f}")
        one = medians["one rdsprov secret get"]
        print(f"extra cost of the AWS secret, cold: {medians['aws, cold cache'] - floor:.1f} ms"
              f" = {(medians['aws, cold cache'] - floor) / one:.2f} x one rdsprov secret get")
    finally:
        subprocess.run([os.path.join(bin_dir, "rdsprov"), "destroy", "--env", "dev", "--confirm", "dev"],
                       env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        moto.terminate()
        moto.wait()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
