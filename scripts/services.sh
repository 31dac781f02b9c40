#!/usr/bin/env bash
# Makes sure Redis and RabbitMQ are installed (Debian/Ubuntu, via apt) and running on 127.0.0.1.
# Sourced by demo.sh and test.sh; safe to run again and again.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do port_open "$2" && return 0; sleep 0.1; done
  echo "error: $1 did not come up on 127.0.0.1:$2 within $3 s" >&2
  return 1
}

ensure_packages() {
  local missing=() updated=""
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v rabbitmq-server >/dev/null || [ -x /usr/sbin/rabbitmq-server ] || missing+=(rabbitmq-server)
  if ! pkg-config --exists openssl 2>/dev/null; then missing+=(libssl-dev pkg-config); fi
  command -v cc >/dev/null || missing+=(build-essential)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]} with apt"
    as_root apt-get update -qq
    updated=1
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
  # promtool (from the Debian package prometheus) checks /metrics in the tests; a test without
  # it fails rather than skips, so install it here. Only the tool is wanted: no recommends, and
  # the Prometheus server the package may start is stopped again.
  if ! command -v promtool >/dev/null; then
    echo "==> installing promtool (package prometheus) with apt"
    [ -n "$updated" ] || as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      prometheus >/dev/null
    if command -v systemctl >/dev/null; then
      as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
  fi
  # Chromium and its WebDriver drive the web console's browser test (docs/design.md §11); like
  # promtool, a missing browser fails that test rather than skipping it, so install them here.
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "==> installing chromium and chromium-driver with apt"
    [ -n "$updated" ] || as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver >/dev/null
  fi
  # stunnel4 terminates TLS in front of the broker for the amqps:// tests (docs/design.md §14);
  # the Debian package's own service is not used (the tests start private ones).
  if ! command -v stunnel4 >/dev/null && ! command -v stunnel >/dev/null; then
    echo "==> installing stunnel4 with apt"
    [ -n "$updated" ] || as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      stunnel4 >/dev/null
  fi
}

ensure_redis() {
  if port_open 6379; then return 0; fi
  echo "==> starting redis-server"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port redis 6379 20
}

ensure_rabbitmq() {
  if port_open 5672; then return 0; fi
  echo "==> starting rabbitmq-server"
  as_root rabbitmq-server -detached
  wait_port rabbitmq 5672 120
  as_root rabbitmqctl -q await_startup >/dev/null 2>&1 || true
}

ensure_services() {
  ensure_packages
  ensure_redis
  ensure_rabbitmq
}
