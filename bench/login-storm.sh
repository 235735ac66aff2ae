#!/usr/bin/env bash
# bench/login-storm.sh: a login storm (BENCHMARKS.md, "Login storm"): USERS accounts with a
# password (made with `roost user add --password-stdin`, as an admin would), then USERS MQTT
# clients signing in with user + password at once (`roost-cli bench connections
# --password`), against one node with its defaults (SQLite history and account store,
# `accounts.hash_workers` = 2). Prints roost-cli's summary (connects/s, CONNACK p50/p99)
# and the node's CPU and RSS; the node and its data live in a temp dir removed at the end.
#
#   cargo build --release && bench/login-storm.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROOST=${ROOST:-$ROOT/target/release/roost}
ROOST_CLI=${ROOST_CLI:-$ROOT/target/release/roost-cli}
USERS=${USERS:-1000}
MQTT_PORT=${MQTT_PORT:-22983}
HTTP_PORT=${HTTP_PORT:-22980}
PASSWORD=login-storm-password

WORK=$(mktemp -d)
NODE_PID=
cleanup() {
    [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/roost.toml" <<TOML
[node]
data_dir = "$WORK/node"
[mqtt]
listen = "127.0.0.1:$MQTT_PORT"
[http]
listen = "127.0.0.1:$HTTP_PORT"
[auth]
jwt_secret = "bench-secret-login-storm-0123456789"
TOML

start=$(date +%s.%N)
for i in $(seq 0 $((USERS - 1))); do
    echo "$PASSWORD" | "$ROOST" user add "u$i" --password-stdin --config "$WORK/roost.toml" >/dev/null
done
made=$(date +%s.%N)
printf 'made %d accounts in %.1f s (one `roost user add` process each)\n' "$USERS" "$(echo "$made - $start" | bc)"

"$ROOST" serve --config "$WORK/roost.toml" 2> "$WORK/node.log" &
NODE_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null || { cat "$WORK/node.log"; exit 1; }

ROOST_BENCH_PASSWORD=$PASSWORD "$ROOST_CLI" --port "$MQTT_PORT" bench connections \
    --users "$USERS" --broker-pid "$NODE_PID"
