#!/usr/bin/env bash
# Proves the README's two commands on a bare machine: builds a clean Debian root
# with debootstrap (only git and ca-certificates added, to clone), mounts this
# machine's Rust toolchain into it read-only, clones the repository's committed
# HEAD inside it, and runs `scripts/demo.sh` and then `scripts/test.sh` there,
# timing each step. Nothing from this machine's packages, caches or servers is
# visible inside: the install steps must find and fetch everything themselves.
#
#   scripts/fresh-check.sh              run it (the Debian root is cached in .fresh/)
#   scripts/fresh-check.sh --rebuild    debootstrap the root again first
#   scripts/fresh-check.sh --demo-only  stop after the demo
#
# Slow (a cold build in the root, then the whole suite): run it by hand when the
# install or build steps change, not from .ci/run. Needs root (debootstrap,
# mount namespaces, chroot) and Debian's package mirror.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${SLUICE_FRESH_DIR:-$repo/.fresh}
suite=${SLUICE_FRESH_SUITE:-bookworm}
mirror=${SLUICE_FRESH_MIRROR:-http://deb.debian.org/debian}

rebuild=false demo_only=false
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=true ;;
    --demo-only) demo_only=true ;;
    *) echo "usage: $0 [--rebuild] [--demo-only]" >&2; exit 2 ;;
  esac
done

log() { printf '[fresh-check] %s\n' "$*" >&2; }
die() { printf '[fresh-check] error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root: debootstrap, mount namespaces and chroot need it"

# The toolchain a new machine has: rustup's default toolchain, and cargo-nextest.
toolchain=$(dirname "$(dirname "$(rustup which cargo 2>/dev/null || command -v cargo)")")
[ -x "$toolchain/bin/cargo" ] && [ -x "$toolchain/bin/rustc" ] || die "no Rust toolchain found (rustup which cargo)"
nextest=$(command -v cargo-nextest || true)

base=$work/base-$suite.tar
if $rebuild || [ ! -f "$base" ]; then
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  log "debootstrap $suite (minbase) from $mirror"
  rm -rf "$work/build" && mkdir -p "$work/build"
  t0=$(date +%s)
  debootstrap --variant=minbase --include=git,ca-certificates "$suite" "$work/build" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log: $work/debootstrap.log)"; }
  tar -C "$work/build" -cf "$base" .
  rm -rf "$work/build"
  log "base root built in $(($(date +%s) - t0)) s"
fi

root=$work/root
rm -rf "$root" && mkdir -p "$root"
tar -C "$root" -xf "$base"
# The machine's network, as every machine of this kind has it: its resolver,
# and the trust anchors its egress needs (added to the root's store below).
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
mkdir -p "$root/opt/rust" "$root/opt/nextest" "$root/src/sluice.git"
[ -n "$nextest" ] && cp "$nextest" "$root/opt/nextest/cargo-nextest"
git clone -q --bare "$repo" "$root/src/sluice.git.tmp"
rm -rf "$root/src/sluice.git" && mv "$root/src/sluice.git.tmp" "$root/src/sluice.git"
commit=$(git -C "$repo" rev-parse --short HEAD)
[ -z "$(git -C "$repo" status --porcelain)" ] || log "note: uncommitted changes are not part of the check (HEAD $commit is)"

# Runs in the root: clone, then the README's two commands, each timed.
cat >"$root/fresh-run.sh" <<'INNER'
#!/bin/bash
set -uo pipefail
export HOME=/root PATH=/opt/rust/bin:/opt/nextest:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export CARGO_HOME=/root/.cargo LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive
update-ca-certificates >/dev/null 2>&1
# Where this machine kind points TLS clients at the system store (pip's own
# bundle would not hold the egress CA); set only when the host sets them.
for v in $NETWORK_ENV; do export "$v=/etc/ssl/certs/ca-certificates.crt"; done
step() {
  local name=$1 t0 rc; shift
  printf '\n[fresh-check] ==> %s\n' "$name"
  t0=$(date +%s)
  "$@"; rc=$?
  printf '[fresh-check] <== %s: exit %d after %d s\n' "$name" "$rc" "$(($(date +%s) - t0))"
  echo "$name|$rc|$(($(date +%s) - t0))" >>/fresh-times
  return $rc
}
: >/fresh-times
step "git clone" git clone -q /src/sluice.git /root/sluice || exit 1
cd /root/sluice || exit 1
step "scripts/demo.sh" scripts/demo.sh || exit 1
[ "${DEMO_ONLY:-false}" = true ] && exit 0
step "scripts/test.sh" scripts/test.sh || exit 1
INNER
chmod +x "$root/fresh-run.sh"

network_env=""
for v in PIP_CERT SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO; do
  [ -n "${!v:-}" ] && network_env="$network_env $v"
done

log "running the README's commands in a clean $suite root at $root (HEAD $commit)"
t0=$(date +%s)
set +e
# A private mount namespace: the mounts vanish with the process, whatever happens.
unshare --mount --fork bash -c '
  set -e
  root=$1 toolchain=$2
  mount --make-rprivate /
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount -t sysfs sys "$root/sys"
  mount -t tmpfs tmpfs "$root/tmp"
  mount --bind "$toolchain" "$root/opt/rust"
  mount -o remount,bind,ro "$root/opt/rust"
  exec chroot "$root" env -i DEMO_ONLY="$3" NETWORK_ENV="$4" /fresh-run.sh
' fresh "$root" "$toolchain" "$demo_only" "$network_env"
rc=$?
set -e

echo
echo "fresh-check of HEAD $commit in a clean Debian $suite root ($(uname -m)), total $(($(date +%s) - t0)) s:"
while IFS='|' read -r name code secs; do
  printf '  %-18s exit %-3s %6d s\n' "$name" "$code" "$secs"
done <"$root/fresh-times"
if [ "$rc" = 0 ]; then echo "PASS"; else echo "FAIL (exit $rc)"; fi
exit "$rc"
