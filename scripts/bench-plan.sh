#!/usr/bin/env bash
# Benchmark: `sluice plan` against the real servers, next to its floor.
# Loads N topics over N/5 namespaces into tansu and etcd through `sluice
# apply`, with DR on every tenth namespace across 10 buckets (one backup
# object under each prefix, so compliance holds). Then, in paired runs, times
# `sluice plan` (nothing to change) and `sluice plan --floor`, which makes
# only the plan's reads, with the same batching, concurrency and overlap, and
# prints how long they took. Reports medians, their ratio, the Kafka requests
# of one plan and a plan's peak RSS. Then commits the estate to Git, changes
# one namespace file, and times `plan --base HEAD` (for two namespaces: see
# below).
# Targets (issue 16): plan at most 1.2x the floor at 10,000 topics; plan
# --base at 10,000 topics within 1.2x of its time at 1,000 (for the same
# scope: ns-00001's); peak RSS under
# 100 MiB at 10,000 topics.
#
#   scripts/bench-plan.sh [N] [RUNS]      (defaults: 1000, 5)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-1000}
runs=${2:-5}
namespaces=$(( (n + 4) / 5 ))

# Fresh servers of its own, so the figures are about N topics only.
. scripts/lib/bench-servers.sh
bench_servers bench
bin=$PWD/target/release/sluice

python3 - "$repo" "$n" "$namespaces" <<'PY'
import os, sys
repo, n, namespaces = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open("examples/sluice.yaml") as f:
    ws = f.read().replace("protected_namespaces: [payments]", "protected_namespaces: []").replace(
        # A synthetic estate on one local broker: above the guidance on purpose.
        "max_partitions_per_broker: 4000", "max_partitions_per_broker: 1000000000")
buckets = "".join(f"      bench-dr-{k}:\n        region: us-east-1\n" for k in range(10))
ws = ws.replace("    buckets:\n", "    buckets:\n" + buckets, 1)
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
    dr = "" if i % 10 else f"""  disaster_recovery:
    rpo: 24h
    backup:
      bucket: bench-dr-{(i // 10) % 10}
      prefix: ns-{i:05d}/
"""
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
{dr}""")
PY

echo "loading $n topics in $namespaces namespaces with sluice apply..."
start=$(date +%s.%N)
"$bin" apply --repo "$repo" --auto-approve > /dev/null
loaded=$(python3 -c "import time; print('%.1f' % (time.time() - $start))")
# One complete backup (a run's manifest, `<prefix><namespace>/<run>/manifest.json`,
# the run ID carrying its start) under each DR namespace, so DR compliance holds.
scripts/services.sh python - "$namespaces" <<'PY'
import datetime, os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["SLUICE_S3_ENDPOINT"], region_name="us-east-1")
run = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.000Z") + "-1"
for i in range(0, int(sys.argv[1]), 10):
    s3.put_object(Bucket=f"bench-dr-{(i // 10) % 10}",
                  Key=f"ns-{i:05d}/ns-{i:05d}/{run}/manifest.json", Body=b"{}")
PY
"$bin" plan --repo "$repo" --detailed-exitcode > /dev/null || { echo "the plan after apply is not empty" >&2; exit 1; }

python3 - "$bin" "$repo" "$runs" "$n" "$namespaces" "$loaded" <<'PY'
import os, re, statistics, subprocess, sys, time
bin, repo, runs, n, namespaces, loaded = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]

plans, floors, floor_walls, rss, requests = [], [], [], [], None
env = dict(os.environ, SLUICE_LOG="sluice::backend::kafka=debug")
for _ in range(runs):
    # Paired: a plan, then the floor, so both see the same servers.
    t = time.perf_counter()
    p = subprocess.Popen([bin, "plan", "--repo", repo, "--detailed-exitcode"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()
    plans.append(time.perf_counter() - t)
    if p.returncode != 0:
        sys.exit(f"plan failed ({p.returncode}): {err[-2000:]}")
    requests = requests or re.findall(r'kafka request api="?([A-Za-z]+)', err)
    t = time.perf_counter()
    f = subprocess.run([bin, "plan", "--repo", repo, "--floor"], capture_output=True, text=True)
    floor_walls.append(time.perf_counter() - t)
    if f.returncode != 0:
        sys.exit(f"plan --floor failed ({f.returncode}): {f.stderr[-2000:]}")
    floors.append(float(re.search(r"floor reads: ([0-9.]+) s", f.stdout).group(1)))
# Peak RSS of one plan on its own.
p = subprocess.Popen([bin, "plan", "--repo", repo], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, _, usage = os.wait4(p.pid, 0)
rss = usage.ru_maxrss / 1024
med = lambda xs: statistics.median(xs)
counts = {a: requests.count(a) for a in dict.fromkeys(requests)}
print(f"topics {n}, namespaces {namespaces} ({int(namespaces) // 10 + (int(namespaces) % 10 > 0)} with DR, 10 buckets); loaded by sluice apply in {loaded} s")
print(f"plan (no changes): median {med(plans):.3f} s (min {min(plans):.3f}, max {max(plans):.3f}) over {runs} runs")
print(f"floor (the plan's reads alone): median {med(floors):.3f} s (min {min(floors):.3f}, max {max(floors):.3f})")
print(f"ratio plan / floor: {med(plans) / med(floors):.2f} (target at 10,000 topics: at most 1.20)")
# The floor's process as a whole (start, parse, connect, the reads, exit),
# timed like the plan: what the plan adds to it is policies, diff and output.
print(f"floor process, whole: median {med(floor_walls):.3f} s; plan / floor process: {med(plans) / med(floor_walls):.2f}")
print(f"peak RSS of a plan: {rss:.1f} MiB (target at 10,000 topics: under 100)")
print(f"Kafka admin requests per plan: {len(requests)} ({', '.join(f'{a} x{c}' for a, c in counts.items())})")
PY

# The pull-request view: one namespace file changed in a commit's worth of
# estate, timed for two namespaces. ns-00001 has no DR: its plan's scope is
# itself at every size. ns-00000 backs up into bench-dr-0, which it shares
# with every tenth DR namespace, so its scope (the namespaces sharing that
# bucket) grows with N: 2 namespaces at 1,000 topics, 20 at 10,000.
# Each is timed against tansu, and through scripts/lib/kafka-proxy.py, which
# answers librdkafka's brokers-only Metadata requests as Kafka does (below),
# then through the proxy without the source index apply wrote (every file is
# read then), 3 x RUNS times each: a run takes a tenth of a second, and its
# spread is wide.
git -C "$repo" init -q && git -C "$repo" add -A
git -C "$repo" -c user.name=bench -c user.email=bench@sluice.invalid commit -qm estate
proxy_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 scripts/lib/kafka-proxy.py "$proxy_port" "$SLUICE_KAFKA_BOOTSTRAP" &
proxy=$!
trap 'kill $proxy 2>/dev/null; rm -rf "$repo"; scripts/services.sh down >/dev/null 2>&1' EXIT
for ns in ns-00001 ns-00000; do
    sed -i 's/retention: [0-9]*d/retention: 13d/' "$repo/namespaces/$ns.yaml"
    python3 - "$bin" "$repo" "$((runs * 3))" "$ns" "127.0.0.1:$proxy_port" <<'PY'
import os, re, statistics, subprocess, sys, time
bin, repo, runs, ns, proxied = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
args = [bin, "plan", "--repo", repo, "--base", "HEAD", "--format", "json"]
def files_read(env):
    p = subprocess.run(args, capture_output=True, text=True, env=dict(env, SLUICE_LOG="sluice::commands::pull_request=debug"))
    m = re.search(r"files=(\d+) unchanged_read=(\d+) of=(\d+)", p.stderr)
    return f"{m.group(1)} of {m.group(3)} namespace files parsed, {m.group(2)} unchanged ones read" if m else "no scope logged"
def timed(label, env):
    scope = files_read(env)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run(args, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t)
        if p.returncode != 0:
            sys.exit(f"plan --base failed ({p.returncode}): {p.stderr[-2000:]}")
    print(f"plan --base HEAD ({ns} changed; {scope}), {label}: median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}) over {runs} runs")
behind_proxy = dict(os.environ, SLUICE_KAFKA_BOOTSTRAP=proxied)
timed("tansu", os.environ)
timed("tansu behind kafka-proxy.py", behind_proxy)
# The same without the source index (its digest key taken away, then put
# back), as a plan of a base that apply has not indexed reads every file.
etcdctl = ["etcdctl", "--endpoints", os.environ["SLUICE_ETCD_ENDPOINTS"]]
key = "/sluice/index/local/digest"
digest = subprocess.run(etcdctl + ["get", key, "--print-value-only"], capture_output=True, text=True, check=True).stdout.strip()
if not digest:
    sys.exit("apply wrote no source index")
subprocess.run(etcdctl + ["del", key], capture_output=True, check=True)
timed("no source index, behind kafka-proxy.py", behind_proxy)
subprocess.run(etcdctl + ["put", key, digest], capture_output=True, check=True)
PY
    git -C "$repo" checkout -q -- "namespaces/$ns.yaml"
done
kill $proxy 2>/dev/null || true

# librdkafka asks for the brokers alone (Metadata with an empty topic list)
# as it connects, and a plan's first Kafka requests queue behind the answer
# on that connection. Kafka answers it with no topic; tansu answers it with
# every topic, so its size and time grow with the estate. `plan --base`
# connects while it reads the change, which hides most of it here; the
# proxied runs above take it away.
python3 - "$runs" <<'PY'
import os, socket, statistics, struct, sys, time
host, port = os.environ["SLUICE_KAFKA_BOOTSTRAP"].split(",")[0].rsplit(":", 1)
def brokers_only():
    body = struct.pack(">hhih", 3, 1, 1, 5) + b"bench" + struct.pack(">i", 0)
    with socket.create_connection((host, int(port))) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        data = s.recv(size, socket.MSG_WAITALL)
    off = 4 + 4
    for _ in range(struct.unpack_from(">i", data, 4)[0]):  # brokers
        off += 4
        off += 2 + struct.unpack_from(">h", data, off)[0] + 4
        off += 2 + max(struct.unpack_from(">h", data, off)[0], 0)
    return size, struct.unpack_from(">i", data, off + 4)[0]
times = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter()
    size, topics = brokers_only()
    times.append(time.perf_counter() - t)
print(f"the broker's answer to a brokers-only Metadata request: {topics} topics, {size // 1024} KiB, median {statistics.median(times) * 1000:.1f} ms (Kafka: no topics)")
PY

# What the source index costs apply: an apply with nothing to change, with
# the index of its files in place (one read says so), and with the index
# deleted first, which it then writes whole.
python3 - "$bin" "$repo" "$runs" <<'PY'
import os, statistics, subprocess, sys, time
bin, repo, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
etcdctl = ["etcdctl", "--endpoints", os.environ["SLUICE_ETCD_ENDPOINTS"]]
def apply():
    t = time.perf_counter()
    subprocess.run([bin, "apply", "--repo", repo, "--auto-approve"], capture_output=True, check=True)
    return time.perf_counter() - t
kept = [apply() for _ in range(runs)]
rewritten = []
for _ in range(runs):
    subprocess.run(etcdctl + ["del", "/sluice/index/local/", "--prefix"], capture_output=True, check=True)
    rewritten.append(apply())
keys = subprocess.run(etcdctl + ["get", "/sluice/index/local/", "--prefix", "--keys-only"], capture_output=True, text=True, check=True).stdout.split()
print(f"apply with nothing to change: median {statistics.median(kept):.3f} s with the source index in place, {statistics.median(rewritten):.3f} s writing it whole ({len(keys)} keys), over {runs} runs each")
PY

size=$(etcdctl --endpoints "$SLUICE_ETCD_ENDPOINTS" get /sluice/inventory/local/ --prefix --print-value-only | wc -c)
echo "inventory in etcd: $((size / 1024)) KiB"
