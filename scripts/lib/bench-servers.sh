# Sourced by the bench scripts that measure against the real servers
# (bench-plan.sh, bench-backup.sh), from the repository root.
#
# bench_servers NAME: fresh servers of the script's own under .services/NAME
# (whatever an earlier run left there is stopped first), so the figures are
# about the script's load only; their endpoints exported with
# SLUICE_ENV=local; a release build of sluice; a new temporary directory in
# $repo for the config repository. On exit the directory is removed and the
# servers are stopped.
bench_servers() {
  export SLUICE_SERVICES_DIR="$PWD/.services/$1"
  scripts/services.sh down >/dev/null 2>&1 || true
  trap 'scripts/services.sh down >/dev/null 2>&1' EXIT
  scripts/services.sh up
  set -a; . "$SLUICE_SERVICES_DIR/env"; set +a
  export SLUICE_ENV=local

  cargo build --quiet --release --locked --bin sluice
  repo=$(mktemp -d)
  trap 'rm -rf "$repo"; scripts/services.sh down >/dev/null 2>&1' EXIT
}
