#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing and starts the
# local servers (etcd, moto, tansu, Prometheus), checks formatting and lints,
# runs the unit tests, the server-free integration tests (tests/it) and the
# live ones against those servers (tests/live, the `live` feature), checks the
# schemas and the examples, and stops the servers again, also when something
# fails. A plain `cargo test` runs everything but tests/live.
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
cargo clippy --all-targets --features live --locked -- -D warnings

step "tests: unit, tests/it, and tests/live against the local servers"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --features live --locked --no-fail-fast
else
  cargo test --features live --locked --no-fail-fast
fi

step "schemas are fresh, examples are valid"
cargo run --quiet --locked -- schema --check
cargo run --quiet --locked -- validate --repo examples

step "all checks passed"
