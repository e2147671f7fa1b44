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

say "Starting the local servers (etcd, S3 on moto, Kafka on tansu, Prometheus)"
scripts/services.sh up
$keep || trap 'scripts/services.sh down' EXIT
. .services/env
export SLUICE_ENV=local

say "Building sluice"
cargo build --quiet --locked --bin sluice
sluice="$PWD/target/debug/sluice"

say "Validating the example config repository (every environment)"
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

say "Policies guard every validate and plan: built-in Rego guardrails, plus the repository's own"
rm -rf .services/policy && mkdir -p .services/policy/policies && cp -r examples/sluice.yaml examples/namespaces .services/policy/
sed -i 's/retention: 3d/retention: 90d/' .services/policy/namespaces/orders.yaml
cat > .services/policy/policies/consumers.rego <<'REGO'
package team.consumers

warn contains msg if {
	count(input.namespace.consumers) == 0
	msg := "no consumer group is declared; lag alerts will see nothing"
}
REGO
show $sluice validate --repo .services/policy --env local || echo "(exit $?: orders' 90d retention is denied outside the critical tier)"

say "Alerts compile to PromQL rule files; the real promtool accepts them"
rm -rf .services/rendered
show $sluice render alerts --repo examples --out .services/rendered
show promtool check rules .services/rendered/sluice-user-events.yml
show grep -m2 -E "alert:|expr:" .services/rendered/sluice-user-events.yml

say "A broken config: every problem is reported at once, with file:line:column and a hint"
(cd tests/fixtures/invalid/many-problems && env -u SLUICE_ENV "$sluice" validate) || echo "(exit $?, as expected)"

say "The plan for the local environment, against the real servers"
show $sluice plan --repo examples

say "Applying it"
show $sluice apply --repo examples --auto-approve

say "Prometheus was reloaded after the apply, and runs every example alert"
curl -sf "$PROMETHEUS_URL/api/v1/rules" | python3 -c '
import json, sys
for g in json.load(sys.stdin)["data"]["groups"]:
    print("  %-20s %s" % (g["name"], ", ".join(r["name"] for r in g["rules"])))
'

say "Planning again: nothing to do (--detailed-exitcode exits 0)"
show $sluice plan --repo examples --detailed-exitcode

s3() { scripts/services.sh python scripts/s3.py "$@"; }

say "Disaster recovery: the example DR policies are live in S3; status shows what is missing"
show $sluice status --repo examples || echo "(exit $?: attention needed)"

say "sluice backup writes each DR namespace's segments and manifest, and the namespaces comply"
show $sluice backup --repo examples
show $sluice status --repo examples

say "A backup older than its RPO is a violation (a copy of examples/ with payments' RPO at 5s, after 6s)"
rm -rf .services/dr && mkdir -p .services/dr && cp -r examples/sluice.yaml examples/namespaces .services/dr/
sed -i 's/rpo: 5m/rpo: 5s/' .services/dr/namespaces/payments.yaml
sleep 6
show $sluice drift --repo .services/dr || echo "(exit $?: a compliance violation)"
show $sluice backup --repo .services/dr payments
show $sluice drift --repo .services/dr || echo "(exit $?: the copy's shorter RPO is a pending change; the violation is gone)"

say "Changing things behind sluice's back, with the servers' own tools"
show s3 suspend-versioning platform-dr-replica
record=$(etcdctl --endpoints "$SLUICE_ETCD_ENDPOINTS" get /sluice/namespaces/orders --print-value-only)
edited=$(printf '%s' "$record" | python3 -c 'import json,sys; r=json.load(sys.stdin); r["owner"]="someone-else"; print(json.dumps(r))')
show etcdctl --endpoints "$SLUICE_ETCD_ENDPOINTS" put /sluice/namespaces/orders "$edited"
show scripts/services.sh tansu topic delete orders.dlq --broker "tcp://$SLUICE_KAFKA_BOOTSTRAP"
show sed -i 's/> 0.05/> 5/' "$SLUICE_RULES_DIR/sluice-user-events.yml"

say "sluice drift catches all four (exit 2)"
show $sluice drift --repo examples || echo "(exit $?: drift)"

say "apply restores the desired state; drift is clean again"
show $sluice apply --repo examples --auto-approve
show $sluice drift --repo examples

say "The drift watcher: metrics, drift repaired by --remediate, SIGTERM exits 0"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$sluice watch --repo examples --interval 2s --listen "127.0.0.1:$port" --remediate 2> .services/watch.log &
watcher=$!
for _ in $(seq 1 50); do curl -sf 127.0.0.1:$port/readyz >/dev/null && break; sleep 0.2; done
show curl -s 127.0.0.1:$port/readyz
show scripts/services.sh tansu topic delete orders.dlq --broker "tcp://$SLUICE_KAFKA_BOOTSTRAP"
sleep 4
curl -s 127.0.0.1:$port/metrics | grep -E '^sluice_(reconciles_total|leader|commit_info|drifted_resources)' || true
kill -TERM "$watcher"; wait "$watcher" && echo "(the watcher exited 0)"
grep -E "drift: changed outside|remediated" .services/watch.log | cut -c1-160
show $sluice plan --repo examples --detailed-exitcode

say "The plan as a pull-request comment (markdown), for a change in Git"
rm -rf .services/pr && mkdir -p .services/pr && cp -r examples/sluice.yaml examples/namespaces .services/pr/
sed -i 's/retention: 3d/retention: 5d/' .services/pr/namespaces/orders.yaml
show $sluice plan --repo .services/pr --format markdown

say "Adopting an existing cluster: import writes Namespace YAML from live state, and plan shows no changes"
rm -rf .services/imported && mkdir -p .services/imported && cp examples/sluice.yaml .services/imported/
show $sluice import --repo .services/imported --out .services/imported/namespaces
show $sluice plan --repo .services/imported --detailed-exitcode

if $keep; then echo "Servers keep running; stop them with scripts/services.sh down."; fi
