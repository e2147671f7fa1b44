#!/usr/bin/env bash
# Benchmark: ways to find each DR namespace's newest complete backup, against
# moto behind a proxy that holds every request 30 ms (issue 16's simulated
# latency). Lays out 200 DR namespaces over 10 buckets as bench-plan.sh does
# at 10,000 topics (one complete run each), then for each history size (the
# objects a namespace holds: its manifest plus older runs' segments) times,
# with a boto3 probe and 8 requests in flight: one listing per bucket, one
# listing per namespace, and runs listed with a `/` delimiter followed by one
# HEAD of the newest run's manifest; then `sluice plan` of those namespaces
# (which lists each bucket, and reads by runs the directories a listing of
# more than two pages has not finished), its S3 behind the same proxy.
#
#   scripts/bench-listing.sh [OBJECTS_PER_NAMESPACE...]   (defaults: 1 51 201)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
sizes=("${@:-1 51 201}")
# shellcheck disable=SC2206
sizes=(${sizes[*]})

. scripts/lib/bench-servers.sh
bench_servers bench-listing
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 scripts/lib/delay-proxy.py "$port" "${SLUICE_S3_ENDPOINT#http://}" 0.030 &
proxy=$!
trap 'kill $proxy 2>/dev/null; rm -rf "$repo"; scripts/services.sh down >/dev/null 2>&1' EXIT

# The 200 DR namespaces as a config repository.
python3 - "$repo" <<'PY'
import os, sys
repo = sys.argv[1]
with open("examples/sluice.yaml") as f:
    ws = f.read().replace("protected_namespaces: [payments]", "protected_namespaces: []")
buckets = "".join(f"      bench-dr-{k}:\n        region: us-east-1\n" for k in range(10))
with open(os.path.join(repo, "sluice.yaml"), "w") as f:
    f.write(ws.replace("    buckets:\n", "    buckets:\n" + buckets, 1))
os.makedirs(os.path.join(repo, "namespaces"))
for i in range(0, 2000, 10):
    with open(os.path.join(repo, "namespaces", f"ns-{i:05d}.yaml"), "w") as f:
        f.write(f"""apiVersion: sluice/v1
kind: Namespace
metadata:
  name: ns-{i:05d}
  owner: bench
spec:
  disaster_recovery:
    rpo: 24h
    backup:
      bucket: bench-dr-{(i // 10) % 10}
      prefix: ns-{i:05d}/
""")
PY

# sluice makes the buckets (versioned, as DR wants) and its records.
target/release/sluice apply --repo "$repo" --auto-approve > /dev/null

scripts/services.sh python - "http://127.0.0.1:$port" "$PWD/target/release/sluice" "$repo" "${sizes[@]}" <<'PY'
import os, statistics, sys, time, boto3
from concurrent.futures import ThreadPoolExecutor
proxied, sluice, repo, sizes = sys.argv[1], sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4:]]
direct = boto3.client("s3", endpoint_url=os.environ["SLUICE_S3_ENDPOINT"], region_name="us-east-1")
s3 = boto3.client("s3", endpoint_url=proxied, region_name="us-east-1")
dr = list(range(0, 2000, 10))
bucket = lambda i: f"bench-dr-{(i // 10) % 10}"
ndir = lambda i: f"ns-{i:05d}/ns-{i:05d}/"
def put(items):
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda bk: direct.put_object(Bucket=bk[0], Key=bk[1], Body=b"x"), items))
put([(bucket(i), ndir(i) + "20261207T000000.000Z-1/manifest.json") for i in dr])
def per_bucket(b):
    for _ in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix="ns-"):
        pass
def per_namespace(i):
    for _ in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket(i), Prefix=ndir(i)):
        pass
def delimited(i):
    runs = []
    for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket(i), Prefix=ndir(i), Delimiter="/"):
        runs += [c["Prefix"] for c in p.get("CommonPrefixes", [])]
    for run in sorted(runs, reverse=True):
        try:
            return s3.head_object(Bucket=bucket(i), Key=run + "manifest.json")
        except s3.exceptions.ClientError:
            pass
def plan(_):
    import subprocess
    done = subprocess.run([sluice, "plan", "--repo", repo], env=dict(os.environ, SLUICE_S3_ENDPOINT=proxied),
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"sluice plan failed ({done.returncode}): {done.stderr[-2000:]} {done.stdout[-2000:]}")
def timed(f, items, runs=3):
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(f, items))
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)
print(f"{len(dr)} DR namespaces in 10 buckets, every S3 request held 30 ms, 8 in flight, medians of 3")
print("objects per namespace   one listing per bucket   per namespace   runs by delimiter + HEAD   sluice plan")
held, hour = 1, 1
for size in sizes:
    # Older runs without manifests, ten segments each, up to `size` objects.
    extra = []
    while held + len(extra) // len(dr) + 10 <= size:
        extra += [(bucket(i), ndir(i) + f"20261201T{hour // 60:02d}{hour % 60:02d}00.000Z-1/t/0/{k:020d}.avro")
                  for i in dr for k in range(10)]
        hour += 1
    put(extra)
    held += len(extra) // len(dr)
    whole = timed(per_bucket, sorted({bucket(i) for i in dr}))
    print(f"{held:>21}   {whole:>20.3f} s   {timed(per_namespace, dr):>11.3f} s   {timed(delimited, dr):>22.3f} s   "
          f"{timed(plan, [None]):>9.3f} s", flush=True)
PY
