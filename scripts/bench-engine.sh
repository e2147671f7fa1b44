#!/usr/bin/env bash
# Benchmark: sluice's own cost of a no-change plan, with the brokers out of
# the picture (benches/engine.rs: the plan path against the in-memory
# backends). One process per size, so each peak RSS is its own; prints how
# wall time, CPU and memory grow per topic between sizes.
# Target (issue 16): growth close to linear, and a no-change plan of 100,000
# topics in under 3 s and 300 MiB.
#
#   scripts/bench-engine.sh [RUNS] [SIZES...]   (defaults: 3, 10000 30000 100000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-3}
shift || true
sizes=("${@:-10000 30000 100000}")
# shellcheck disable=SC2206
sizes=(${sizes[*]})

cargo bench --quiet --locked --bench engine --no-run 2>/dev/null
python3 - "$runs" "${sizes[@]}" <<'PY'
import re, statistics, subprocess, sys
runs, sizes = int(sys.argv[1]), [int(s) for s in sys.argv[2:]]
rows = []
for n in sizes:
    walls, cpus, rsss, owns = [], [], [], []
    for _ in range(runs):
        out = subprocess.run(["cargo", "bench", "--quiet", "--locked", "--bench", "engine", "--", str(n)],
                             capture_output=True, text=True, check=True).stdout
        print(out.strip(), flush=True)
        m = re.search(r"no-change plan ([0-9.]+) s .* CPU ([0-9.]+) s, peak RSS ([0-9.]+) MiB \(fakes loaded: ([0-9.]+) MiB", out)
        walls.append(float(m.group(1))); cpus.append(float(m.group(2))); rsss.append(float(m.group(3)))
        # The fakes hold a second copy of the live state (a real plan holds
        # only the one it reads): the plan's own memory is above theirs.
        owns.append(float(m.group(3)) - float(m.group(4)))
    rows.append((n, statistics.median(walls), statistics.median(cpus), statistics.median(rsss), statistics.median(owns)))
print()
print("topics    plan (median)   CPU      peak RSS   above the fakes   per topic: time    memory")
for n, w, c, r, o in rows:
    print(f"{n:>7}   {w:>9.3f} s   {c:>6.2f} s   {r:>7.1f} MiB   {o:>9.1f} MiB     {w / n * 1e6:>8.1f} us   {r * 1024 / n:>6.2f} KiB")
(n0, w0, _, r0, _), (n1, w1, _, r1, _) = rows[0], rows[-1]
print(f"growth {n0} -> {n1} topics (x{n1 / n0:.0f}): time x{w1 / w0:.1f}, peak RSS x{r1 / r0:.1f}")
print(f"target at 100,000 topics: under 3 s and 300 MiB")
PY
