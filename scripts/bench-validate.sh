#!/usr/bin/env bash
# Benchmark: `sluice validate` on a generated config repository of N namespace
# files (default 1000), with the examples' workspace. Prints wall time over
# several runs and the peak RSS. Target: under 1 s for 1,000 files.
#
#   scripts/bench-validate.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-1000}
runs=${2:-5}

cargo build --quiet --release --locked --bin sluice
bin=$PWD/target/release/sluice
repo=$(mktemp -d)
trap 'rm -rf "$repo"' EXIT

python3 - "$repo" "$n" <<'PY'
import os, shutil, sys
repo, n = sys.argv[1], int(sys.argv[2])
with open("examples/sluice.yaml") as f:
    workspace = f.read().replace("protected_namespaces: [payments]", "protected_namespaces: [ns-0000]").replace(
        # A synthetic estate on one local broker: above the guidance on purpose.
        "max_partitions_per_broker: 4000", "max_partitions_per_broker: 1000000000")
with open(os.path.join(repo, "sluice.yaml"), "w") as f:
    f.write(workspace)
for i in range(n):
    team = "team-%02d" % (i % 40)
    d = os.path.join(repo, "namespaces", team)
    os.makedirs(d, exist_ok=True)
    name = "ns-%04d" % i
    # Every critical namespace (each 10th) has DR, as the built-in policy demands.
    dr = "" if i % 3 and i % 10 else f"""  disaster_recovery:
    rpo: 15m
    backup:
      bucket: platform-dr-backups
      schedule: "*/15 * * * *"
      retain: 30d
    replication:
      bucket: platform-dr-replica
      region: eu-west-1
    pitr:
      window: 7d
"""
    with open(os.path.join(d, name + ".yaml"), "w") as f:
        f.write(f"""# yaml-language-server: $schema=../../schemas/namespace.schema.json
apiVersion: sluice/v1
kind: Namespace
metadata:
  name: {name}
  owner: {team}
  tier: {"critical" if i % 10 == 0 else "standard"}
  labels:
    cost-center: cc-{i % 17}
spec:
  capacity:
    write_rps: {1000 + 37 * i}
    read_rps: {2000 + 53 * i}
  retention: {1 + i % 14}d
  compression: zstd
  max_message_bytes: 1MiB
  topics:
    - name: {name}
      dlq: true
    - name: {name}-state
      partitions: 6
      config:
        cleanup.policy: compact
        min.compaction.lag.ms: 1h
  consumers:
    - group: {name}-consumer
      max_lag: 10000
  access:
    - service: {name}-api
      permissions: [read, write]
    - service: reporting
      permissions: [read]
    - team: {team}
      permissions: [admin]
  alerts:
    - name: high-latency
      condition: p99_latency > 50ms
      for: 5m
      severity: warning
    - name: capacity
      condition: write_rps > 0.9 * capacity
      for: 10m
      severity: warning
{dr}""")
PY

files=$(find "$repo/namespaces" -name '*.yaml' | wc -l)
bytes=$(du -sb "$repo" | cut -f1)
echo "config: $files namespace files, $((bytes / 1024)) KiB, $(nproc) cores"
"$bin" validate --repo "$repo"   # warms the page cache; fails the bench if invalid

python3 - "$bin" "$repo" "$runs" <<'PY'
import resource, statistics, subprocess, sys, time
bin, repo, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run([bin, "validate", "--repo", repo], check=True, stdout=subprocess.DEVNULL)
    times.append(time.perf_counter() - t)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("validate (all environments): min %.3f s, median %.3f s, max %.3f s over %d runs; peak RSS %.1f MiB"
      % (min(times), statistics.median(times), max(times), runs, rss / 1024))
PY
