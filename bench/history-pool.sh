#!/usr/bin/env bash
# bench/history-pool.sh: history into PostgreSQL with two `history.pool_size` values and
# synchronous_commit on and off, the four configurations interleaved (A B C D, ROUNDS
# times) so they share the machine's conditions. A private PostgreSQL (initdb, on a free
# port, default settings besides synchronous_commit) is started and removed; the shared
# server is not touched.
#
#   cargo build --release && bench/history-pool.sh      # writes bench/results/history-pool.md
#
# Per run: a fresh database, a fresh node (history in the node), then
#   flat out: USERS_MAX users x MSGS_MAX messages, --interval 0 --inflight 8: stored msg/s
#             and publish-to-ack p99;
#   paced:    USERS_PACED users x MSGS_PACED messages, one per second each: p99 ack.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROOST=${ROOST:-$ROOT/target/release/roost}
ROOST_CLI=${ROOST_CLI:-$ROOT/target/release/roost-cli}
POOLS=${POOLS:-"2 10"}
ROUNDS=${ROUNDS:-2}
USERS_MAX=${USERS_MAX:-500}
MSGS_MAX=${MSGS_MAX:-200}
USERS_PACED=${USERS_PACED:-1000}
MSGS_PACED=${MSGS_PACED:-30}
PG_PORT=${PG_PORT:-25432}
MQTT_PORT=${MQTT_PORT:-22883}
HTTP_PORT=${HTTP_PORT:-22880}
OUT=${OUT:-$ROOT/bench/results/history-pool.md}
SECRET=bench-secret-history-pool-0123456789

WORK=$(mktemp -d)
chown postgres:postgres "$WORK"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { runuser -u postgres -- "$@"; }
psql_() { PGOPTIONS="-c client_min_messages=warning" psql -X -qAt -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "$1"; }
NODE_PID=
cleanup() {
    [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null || true
    as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

as_pg "$PGBIN/initdb" -A trust -U postgres -E UTF8 -D "$WORK/pg" >/dev/null
as_pg "$PGBIN/pg_ctl" -w -D "$WORK/pg" -l "$WORK/pg.log" \
    -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null

# run POOL SYNC: prints "stored_per_sec p99_flat p99_paced"
run() {
    local pool=$1 sync=$2 db="bench_${1}_${2}"
    psql_ "DROP DATABASE IF EXISTS $db" >/dev/null
    psql_ "CREATE DATABASE $db" >/dev/null
    psql_ "ALTER DATABASE $db SET synchronous_commit = $sync" >/dev/null
    cat > "$WORK/roost.toml" <<TOML
[node]
data_dir = "$WORK/node"
[mqtt]
listen = "127.0.0.1:$MQTT_PORT"
[http]
listen = "127.0.0.1:$HTTP_PORT"
[auth]
jwt_secret = "$SECRET"
[history]
database_url = "postgres://postgres@127.0.0.1:$PG_PORT/$db"
pool_size = $pool
TOML
    "$ROOST" serve --config "$WORK/roost.toml" 2> "$WORK/node.log" &
    NODE_PID=$!
    for _ in $(seq 1 100); do grep -q "history database ready" "$WORK/node.log" && break; sleep 0.1; done
    grep -q "history database ready" "$WORK/node.log" || { cat "$WORK/node.log"; exit 1; }
    local flat paced
    flat=$("$ROOST_CLI" --port "$MQTT_PORT" --secret "$SECRET" bench dm --ack --json \
        --users "$USERS_MAX" --messages "$MSGS_MAX" --interval 0 --inflight 8 2>/dev/null)
    paced=$("$ROOST_CLI" --port "$MQTT_PORT" --secret "$SECRET" bench dm --ack --json \
        --users "$USERS_PACED" --messages "$MSGS_PACED" --interval 1s 2>/dev/null)
    kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true; NODE_PID=
    python3 - "$flat" "$paced" <<'PY'
import json, sys
flat, paced = (json.loads(a) for a in sys.argv[1:3])
def lat(r): return r.get("latency", {}) or {}
assert flat["stored"] == flat["sent"], f"flat: {flat['stored']} of {flat['sent']} stored"
assert paced["stored"] == paced["sent"], f"paced: {paced['stored']} of {paced['sent']} stored"
print(f"{flat['stored_per_sec']:.0f} {lat(flat)['p99_ms']:.1f} {lat(paced)['p99_ms']:.1f}")
PY
}

for round in $(seq 1 "$ROUNDS"); do
    for pool in $POOLS; do
        for sync in on off; do
            r=$(run "$pool" "$sync")
            echo "round $round pool_size=$pool synchronous_commit=$sync: stored/s, p99 flat ms, p99 paced ms = $r" >&2
            echo "$pool $sync $r" >> "$WORK/results"
        done
    done
done

python3 - "$WORK/results" "$USERS_PACED" "$ROUNDS" <<'PY' | tee "$OUT"
import os, sys, time
rows = {}
for line in open(sys.argv[1]):
    pool, sync, *vals = line.split()
    rows.setdefault((int(pool), sync), []).append(vals)
print(f"| pool_size | synchronous_commit | flat out: stored msg/s | flat out: p99 ack ms | paced {sys.argv[2]} msg/s: p99 ack ms |")
print("|---|---|---|---|---|")
for (pool, sync), runs in rows.items():
    col = lambda i: " / ".join(r[i] for r in runs)
    print(f"| {pool} | {sync} | {col(0)} | {col(1)} | {col(2)} |")
load = open("/proc/loadavg").read().split()[:3]
print(f"\n{sys.argv[3]} rounds interleaved (values per round, in order); {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
      f"{os.cpu_count()} cores, load average {' '.join(load)} at the end.")
PY
