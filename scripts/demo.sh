#!/usr/bin/env bash
# One command to see drumbeat work on a fresh Debian machine with Rust:
# installs/starts Redis and RabbitMQ, builds release, starts a sink that prints each fire,
# two beats (one leads, one stands by) and two workers. Ctrl-C stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=services.sh
. scripts/services.sh
ensure_services

echo "==> building release binaries"
cargo build --release -p drumbeat-beat -p drumbeat-worker --bins
cargo build --release -p drumbeat-common --example sink
BIN=target/release
CONFIG=${DRUMBEAT_CONFIG:-example/drumbeat.toml}
RUN=.demo
mkdir -p "$RUN"
pids=()

stop() {
  echo
  echo "==> stopping (SIGTERM: beats release the lease, workers drain)"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "==> stopped; logs are in $RUN/"
  exit 0
}
trap stop INT TERM

start() { # name ops-env ops-addr command...
  local name=$1 env=$2 addr=$3
  shift 3
  env "$env=$addr" "$@" >"$RUN/$name.log" 2>&1 &
  pids+=($!)
  echo $! >"$RUN/$name.pid"
  echo "    $name pid $! (ops http://$addr/status, log $RUN/$name.log)"
}

# The operator token for /api/v1 and the console (docs/design.md §14): made once, kept in
# .demo/admin.token, handed to every process through the environment, never printed.
TOKEN_FILE=$RUN/admin.token
if [ ! -s "$TOKEN_FILE" ]; then
  (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$TOKEN_FILE")
fi
DRUMBEAT__OPS__TOKENS__ADMIN=$(cat "$TOKEN_FILE")
export DRUMBEAT__OPS__TOKENS__ADMIN

echo "==> starting the system (config $CONFIG)"
"$BIN/examples/sink" 127.0.0.1:8080 &
pids+=($!)
start beat-1 DRUMBEAT__BEAT__OPS_ADDR 127.0.0.1:9464 "$BIN/beat" --config "$CONFIG" --id beat-1 run
start beat-2 DRUMBEAT__BEAT__OPS_ADDR 127.0.0.1:9466 "$BIN/beat" --config "$CONFIG" --id beat-2 run
start worker-1 DRUMBEAT__WORKER__OPS_ADDR 127.0.0.1:9465 "$BIN/worker" --config "$CONFIG" --id worker-1 run
start worker-2 DRUMBEAT__WORKER__OPS_ADDR 127.0.0.1:9467 "$BIN/worker" --config "$CONFIG" --id worker-2 run
cat <<TXT

Fires print below as the sink receives them (schedule "heartbeat", every 5 s).
Try a failover in another terminal:  kill -9 \$(cat $RUN/beat-1.pid)   (or beat-2: whichever leads)
Steer it:  $BIN/beat --config $CONFIG ctl list   (pause, resume, trigger, backfill: README "Operating drumbeat")
Console:   http://127.0.0.1:9464/  (token: cat $TOKEN_FILE)
Who leads: curl -s -H "Authorization: Bearer \$(cat $TOKEN_FILE)" 127.0.0.1:9464/status
Role changes:  grep 'role changed' $RUN/beat-*.log
Ctrl-C stops everything.

TXT
wait
