#!/usr/bin/env bash
# The demo: installs and starts the local servers, builds sluice and runs it on
# examples/. Stops the servers at the end unless --keep is given.
#
#   scripts/demo.sh           run the demo, then stop the servers
#   scripts/demo.sh --keep    leave the servers running (scripts/services.sh down stops them)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

keep=false
[ "${1:-}" = "--keep" ] && keep=true

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$ %s\n' "$*"; "$@"; }

say "Starting the local servers (etcd, S3 on moto, Kafka on tansu)"
scripts/services.sh up
$keep || trap 'scripts/services.sh down' EXIT
set -a; . .services/env; set +a
export SLUICE_ENV=local

say "Building sluice"
cargo build --quiet --locked --bin sluice
sluice="$PWD/target/debug/sluice"

say "Validating the example config repository"
show $sluice validate --repo examples

say "The resolved model of the local environment (partitions from capacity, Kafka configs, DLQs)"
$sluice validate --repo examples --format json | python3 -c '
import json, sys
env = json.load(sys.stdin)["environments"][0]
e = env["environment"]
print("environment %s: Kafka %s, etcd %s, S3 %s" % (e["name"], ",".join(e["kafka"]["bootstrap_servers"]), ",".join(e["etcd"]["endpoints"]), e["s3"]["endpoint"]))
for ns in env["namespaces"]:
    for t in ns["topics"]:
        print("  %-14s %-16s partitions=%-3s (%s) rf=%s %s" % (ns["name"], t["name"], t["partitions"], t["partitions_from"], t["replication_factor"],
              " ".join("%s=%s" % kv for kv in sorted(t["config"].items()))))
'

say "A broken config: every problem is reported at once, with file:line:column and a hint"
(cd tests/fixtures/invalid/many-problems && env -u SLUICE_ENV "$sluice" validate) || echo "(exit $?, as expected)"

say "Not built yet: plan, apply and drift against these servers come with the next issues"
$keep && echo "Servers keep running; stop them with scripts/services.sh down."
