#!/usr/bin/env bash
# The test command: starts Redis and RabbitMQ if they are down (installing them, and promtool
# for the /metrics test, with apt when missing), builds the binaries the tests spawn, and runs
# every test (unit, integration, fault injection) against the real services.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=services.sh
. scripts/services.sh
ensure_services
FEATURES=(--features drumbeat-worker/failpoints)
echo "==> building"
cargo build --workspace --bins "${FEATURES[@]}"
echo "==> testing"
cargo test --workspace "${FEATURES[@]}" -- --test-threads "${TEST_THREADS:-4}" "$@"
