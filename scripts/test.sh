#!/usr/bin/env bash
# The whole test suite, as CI runs it: starts the local servers (etcd, moto,
# tansu), checks formatting and lints, runs every unit and integration test
# against those servers, checks the schemas and the examples, and stops the
# servers again, also when something fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The suite's own servers, apart from any the demo or a developer started.
export SLUICE_SERVICES_DIR="$PWD/.services/test"
export SLUICE_SERVICES_ENV="$SLUICE_SERVICES_DIR/env"
trap 'scripts/services.sh down' EXIT
scripts/services.sh up

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "tests (unit and integration, against the local servers)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi

step "schemas are fresh, examples are valid"
cargo run --quiet --locked -- schema --check
cargo run --quiet --locked -- validate --repo examples

step "all checks passed"
