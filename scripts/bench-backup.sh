#!/usr/bin/env bash
# Benchmark: `sluice backup` and `sluice restore` against the real servers,
# each next to its floor (benches/backup.rs: the same rdkafka and S3 clients
# making the same reads and writes, with none of sluice's logic).
# Starts its own servers, applies a namespace `dr` whose topic `bench-events`
# has 6 partitions and whose backups go to bucket `bench-backups`, and fills
# the topic with at least MiB of record data (20-byte keys, 1 KiB JSON-like
# values, a 37-byte trace header). Then, in paired runs (the order inside a
# pair alternates):
#   - `sluice backup dr` (release build), and the floor: one consumer reading
#     the 6 partitions and putting the records' bytes to the same bucket, an
#     object per 32 MiB of record data per partition (sluice's segment size);
#   - `sluice restore dr --into-suffix .rN` into a fresh topic, and the
#     floor: a plain producer writing the same records into a fresh topic.
# Reports MB/s of record data (medians), the ratios sluice / floor and the
# peak RSS of backup and restore (getrusage of the child).
# Targets (issue 18): both ratios >= 0.8; peak RSS under 256 MiB.
#
#   scripts/bench-backup.sh [MiB] [RUNS]      (defaults: 1024, 3)
#   SLUICE_BENCH_BIN=/path/to/sluice scripts/bench-backup.sh …   another build of sluice
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mib=${1:-1024}
runs=${2:-3}

# Fresh servers of its own, so the figures are about this topic only.
. scripts/lib/bench-servers.sh
bench_servers bench-backup
bin=${SLUICE_BENCH_BIN:-$PWD/target/release/sluice}
floor=$(cargo bench --locked --bench backup --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "backup" and m.get("executable"):
        print(m["executable"])')
[ -x "$floor" ] || { echo "the floor binary did not build" >&2; exit 1; }

python3 - "$repo" <<'PY'
import os, sys
repo = sys.argv[1]
with open("examples/sluice.yaml") as f:
    ws = f.read().replace("protected_namespaces: [payments]", "protected_namespaces: []")
ws = ws.replace("    buckets:\n", "    buckets:\n      bench-backups:\n        region: us-east-1\n", 1)
with open(os.path.join(repo, "sluice.yaml"), "w") as f:
    f.write(ws)
os.makedirs(os.path.join(repo, "namespaces"))
with open(os.path.join(repo, "namespaces", "dr.yaml"), "w") as f:
    f.write("""apiVersion: sluice/v1
kind: Namespace
metadata:
  name: dr
  owner: team-dr
spec:
  retention: 7d
  topics:
    - name: bench-events
      partitions: 6
  access:
    - service: bench
      permissions: [read, write]
  disaster_recovery:
    rpo: 1h
    backup:
      bucket: bench-backups
      prefix: backups/
""")
PY
"$bin" apply --repo "$repo" --auto-approve >/dev/null

echo "filling bench-events (6 partitions) with $mib MiB of records..."
"$floor" produce "$SLUICE_KAFKA_BOOTSTRAP" bench-events 6 "$mib"

python3 - "$bin" "$floor" "$repo" "$runs" "$mib" <<'PY'
import os, re, statistics, subprocess, sys, tempfile, time
bin, floor, repo, runs, mib = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
boot = os.environ["SLUICE_KAFKA_BOOTSTRAP"]
s3 = os.environ["SLUICE_S3_ENDPOINT"]

def timed_rss(args, what):
    """Wall seconds, peak RSS (MiB) and stdout of one process (getrusage)."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors)
        out = p.stdout.read().decode()
        _, status, usage = os.wait4(p.pid, 0)
        errors.seek(0)
        err = errors.read().decode(errors="replace")
    took = time.perf_counter() - t
    if status != 0:
        sys.exit(f"{what} failed ({status}): {out[-1000:]}{err[-2000:]}")
    return took, usage.ru_maxrss / 1024, out

def empty_bucket():
    subprocess.run(["scripts/services.sh", "python", "-c", """
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["SLUICE_S3_ENDPOINT"], region_name="us-east-1")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench-backups"):
    keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
    if keys:
        s3.delete_objects(Bucket="bench-backups", Delete={"Objects": keys})
"""], check=True)

def delete_topic(topic):
    subprocess.run([floor, "delete", boot, topic], check=True, stdout=subprocess.DEVNULL)
    time.sleep(1)

backups, backup_floors, restores, restore_floors = [], [], [], []
backup_rss, restore_rss, floor_rss = [], [], []
data = None
for i in range(1, runs + 1):
    empty_bucket()
    pair = [("sluice", lambda: timed_rss([bin, "backup", "--repo", repo, "dr"], "sluice backup")),
            ("floor", lambda: timed_rss([floor, "read", boot, "bench-events", "6", s3, "bench-backups", "floor/", str(32 * 1024 * 1024)], "backup floor"))]
    for who, run in (pair if i % 2 else pair[::-1]):
        took, rss, out = run()
        if who == "sluice":
            m = re.search(r"(\d+) record\(s\) in (\d+) object\(s\), (\d+) byte\(s\)", out)
            records, objects, written = int(m.group(1)), int(m.group(2)), int(m.group(3))
            backups.append(took); backup_rss.append(rss)
            print(f"run {i}: sluice backup {took:.2f} s, {records} records, {objects} objects, {written / 1e6:.0f} MB put, peak RSS {rss:.0f} MiB", flush=True)
        else:
            m = re.search(r"\((\d+) objects\) (\d+) records, (\d+) bytes", out)
            data = int(m.group(3))
            backup_floors.append(took); floor_rss.append(rss)
            print(f"run {i}: backup floor {took:.2f} s, {m.group(2)} records, {m.group(1)} objects, {data / 1e6:.0f} MB put, peak RSS {rss:.0f} MiB", flush=True)
    pair = [("sluice", lambda: timed_rss([bin, "restore", "--repo", repo, "dr", "--confirm", "dr", "--into-suffix", f".r{i}"], "sluice restore"), f"bench-events.r{i}"),
            ("floor", lambda: timed_rss([floor, "produce", boot, f"bench-floor-{i}", "6", str(mib)], "restore floor"), f"bench-floor-{i}")]
    for who, run, topic in (pair if i % 2 else pair[::-1]):
        took, rss, out = run()
        delete_topic(topic)
        if who == "sluice":
            restores.append(took); restore_rss.append(rss)
            print(f"run {i}: sluice restore {took:.2f} s, peak RSS {rss:.0f} MiB: {out.strip().splitlines()[-1]}", flush=True)
        else:
            restore_floors.append(took)
            print(f"run {i}: restore floor {took:.2f} s, peak RSS {rss:.0f} MiB: {out.strip()}", flush=True)

med = statistics.median
mbs = lambda s: data / 1e6 / s
print()
print(f"topic: {data / 1e6:.0f} MB of record data ({mib} MiB asked) over 6 partitions; {runs} paired runs; load average {os.getloadavg()[0]:.1f}")
print(f"backup:  sluice {mbs(med(backups)):.1f} MB/s (median {med(backups):.2f} s, min {min(backups):.2f}, max {max(backups):.2f}); floor {mbs(med(backup_floors)):.1f} MB/s (median {med(backup_floors):.2f} s); ratio {med(backup_floors) / med(backups):.2f} (target >= 0.8)")
print(f"restore: sluice {mbs(med(restores)):.1f} MB/s (median {med(restores):.2f} s, min {min(restores):.2f}, max {max(restores):.2f}); floor {mbs(med(restore_floors)):.1f} MB/s (median {med(restore_floors):.2f} s); ratio {med(restore_floors) / med(restores):.2f} (target >= 0.8)")
print(f"peak RSS: backup {max(backup_rss):.0f} MiB, restore {max(restore_rss):.0f} MiB (target under 256); the backup floor's {max(floor_rss):.0f} MiB")
PY
