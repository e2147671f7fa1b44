#!/usr/bin/env bash
# Benchmark: `sluice plan` against the real servers. Loads N topics spread
# over N/5 namespaces into tansu and etcd through `sluice apply`, then times
# `sluice plan` (nothing to change), counts the Kafka admin requests one plan
# sends, and reports peak RSS and the inventory's size in etcd. Then commits
# the estate to Git, changes one namespace file, and times `plan --base HEAD`.
# Target: 5,000 topics planned in under 3 s, with Kafka requests that do not
# grow with N.
#
#   scripts/bench-plan.sh [N] [RUNS]      (defaults: 1000, 3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-1000}
runs=${2:-3}
namespaces=$(( (n + 4) / 5 ))

# Fresh servers of its own, so the figures are about N topics only.
export SLUICE_SERVICES_DIR="$PWD/.services/bench"
scripts/services.sh down >/dev/null 2>&1 || true
trap 'scripts/services.sh down >/dev/null 2>&1' EXIT
scripts/services.sh up
set -a; . "$SLUICE_SERVICES_DIR/env"; set +a
export SLUICE_ENV=local

cargo build --quiet --release --locked --bin sluice
bin=$PWD/target/release/sluice
repo=$(mktemp -d)
trap 'rm -rf "$repo"; scripts/services.sh down >/dev/null 2>&1' EXIT

python3 - "$repo" "$n" "$namespaces" <<'PY'
import os, sys
repo, n, namespaces = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open("examples/sluice.yaml") as f:
    ws = f.read().replace("protected_namespaces: [payments]", "protected_namespaces: []").replace(
        # A synthetic estate on one local broker: above the guidance on purpose.
        "max_partitions_per_broker: 4000", "max_partitions_per_broker: 1000000000")
with open(os.path.join(repo, "sluice.yaml"), "w") as f:
    f.write(ws)
os.makedirs(os.path.join(repo, "namespaces"))
made = 0
for i in range(namespaces):
    count = min(5, n - made)
    if count <= 0:
        break
    topics = "".join(f"    - name: ns-{i:05d}-t{j}\n      partitions: 1\n" for j in range(count))
    made += count
    with open(os.path.join(repo, "namespaces", f"ns-{i:05d}.yaml"), "w") as f:
        f.write(f"""apiVersion: sluice/v1
kind: Namespace
metadata:
  name: ns-{i:05d}
  owner: team-{i % 40:02d}
spec:
  retention: {1 + i % 14}d
  topics:
{topics}  access:
    - service: svc-{i:05d}
      permissions: [read, write]
""")
PY

echo "loading $n topics in $namespaces namespaces with sluice apply..."
start=$(date +%s.%N)
"$bin" apply --repo "$repo" --auto-approve > /dev/null
loaded=$(python3 -c "import time; print('%.1f' % (time.time() - $start))")
"$bin" plan --repo "$repo" --detailed-exitcode > /dev/null || { echo "the plan after apply is not empty" >&2; exit 1; }

python3 - "$bin" "$repo" "$runs" "$n" "$namespaces" "$loaded" <<'PY'
import os, re, resource, statistics, subprocess, sys, time
bin, repo, runs, n, namespaces, loaded = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
times, requests = [], None
env = dict(os.environ, SLUICE_LOG="sluice::backend::kafka=debug")
for _ in range(runs):
    t = time.perf_counter()
    p = subprocess.run([bin, "plan", "--repo", repo, "--detailed-exitcode"], env=env, capture_output=True, text=True)
    times.append(time.perf_counter() - t)
    if p.returncode != 0:
        sys.exit(f"plan failed ({p.returncode}): {p.stderr[-2000:]}")
    apis = re.findall(r'kafka request api="?([A-Za-z]+)', p.stderr)
    requests = requests or apis
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"topics {n}, namespaces {namespaces}; loaded by sluice apply in {loaded} s")
print(f"plan (no changes): min {min(times):.3f} s, median {statistics.median(times):.3f} s, max {max(times):.3f} s over {runs} runs; peak RSS {rss:.1f} MiB")
print(f"Kafka admin requests per plan: {len(requests)} ({', '.join(requests)})")
PY

# The pull-request view: one namespace file changed in a commit's worth of estate.
git -C "$repo" init -q && git -C "$repo" add -A
git -C "$repo" -c user.name=bench -c user.email=bench@sluice.invalid commit -qm estate
changed=$(find "$repo/namespaces" -name '*.yaml' | sort | head -n1)
sed -i 's/retention: [0-9]*d/retention: 2d/' "$changed"
python3 - "$bin" "$repo" "$runs" <<'PY'
import statistics, subprocess, sys, time
bin, repo, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = []
for _ in range(runs):
    t = time.perf_counter()
    p = subprocess.run([bin, "plan", "--repo", repo, "--base", "HEAD", "--format", "json"], capture_output=True, text=True)
    times.append(time.perf_counter() - t)
    if p.returncode != 0:
        sys.exit(f"plan --base failed ({p.returncode}): {p.stderr[-2000:]}")
print(f"plan --base HEAD (1 namespace file changed): min {min(times):.3f} s, median {statistics.median(times):.3f} s over {runs} runs")
PY

size=$(etcdctl --endpoints "$SLUICE_ETCD_ENDPOINTS" get /sluice/inventory/local/ --prefix --print-value-only | wc -c)
echo "inventory in etcd: $((size / 1024)) KiB in 16 shards"
