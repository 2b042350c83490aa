#!/usr/bin/env bash
# The whole test suite. Starts the services the tests need when they are absent (installing
# them if needed), then runs every test with cargo-nextest (or `cargo test` without it).
# A test never skips because a service is down: it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
export SLUICE_TEST_PG_URL="${SLUICE_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  echo "test.sh: PostgreSQL is not running on 127.0.0.1:5432; starting it"
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
  pg_isready -h 127.0.0.1 -p 5432 || { echo "test.sh: PostgreSQL did not start" >&2; exit 1; }
}

ensure_postgres

# NATS with JetStream on 127.0.0.1:4222, for the bus tests (a deployment of several processes)
ensure_nats() {
  if (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then return 0; fi
  echo "test.sh: NATS is not running on 127.0.0.1:4222; starting it with JetStream"
  if [ ! -x /usr/sbin/nats-server ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nats-server
  fi
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  for _ in $(seq 1 30); do
    (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && return 0
    sleep 1
  done
  echo "test.sh: NATS did not start" >&2
  exit 1
}
ensure_nats
export SLUICE_TEST_NATS_URL="${SLUICE_TEST_NATS_URL:-nats://127.0.0.1:4222}"
psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname = 'test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -d postgres -c "create database test"

# Segment's official Python library, for the end-to-end test of the Tracking API
python3 -c "import segment.analytics" 2>/dev/null || pip install -q segment-analytics-python
# Schemathesis, for the control API's OpenAPI conformance test
command -v st >/dev/null 2>&1 || pip install -q schemathesis
# fakesnow, a Snowflake stand-in speaking the connector protocol (`fakesnow -s`), for the Snowflake
# warehouse tests; its server imports snowflake.connector.converter, which connector 5.x dropped
python3 -c "import fakesnow.server" 2>/dev/null || pip install -q "fakesnow[server]==0.12.1" "snowflake-connector-python<5"

# Segment's JavaScript clients (crates/sluice-server/tests/segment_clients.rs): Node.js, the pinned
# npm packages of tests/js (`npm ci` when node_modules is missing or was installed from another package-lock.json)
# and Debian's Chromium, driven by playwright-core (which never downloads a browser).
ensure_js() {
  local apt_updated=""
  apt_install() {
    [ -n "$apt_updated" ] || { apt-get update -q && apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
  }
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  [ -x /usr/bin/chromium ] || apt_install chromium
  local js=crates/sluice-server/tests/js
  local stamp="$js/node_modules/.package-lock.sha256"
  local want
  want=$(sha256sum "$js/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    (cd "$js" && npm ci --no-audit --no-fund --ignore-scripts) # esbuild finds its binary without its postinstall
    echo "$want" > "$stamp"
  fi
}
ensure_js

if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
