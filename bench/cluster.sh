#!/usr/bin/env bash
# bench/cluster.sh: the same chat load on one roost node and on a cluster of NODES nodes
# (BENCHMARKS.md, "Cluster"). Starts a private NATS cluster (three nats-servers with
# JetStream on free ports in a temp dir), a fresh PostgreSQL database for the history
# (every node of a cluster writes the one database; the single node uses it too, so only
# the cluster differs), the nodes, and drives them with `roost-cli bench --nodes`.
#
# Runs, each on fresh nodes and a fresh database:
#   single-chat   1 node:      USERS users, one DM every INTERVAL each, MESSAGES each
#   cluster-chat  NODES nodes: the same users spread over the nodes (user i on node i mod
#                 NODES), so with 2 nodes about half of the DMs cross between nodes
#   single-max    1 node:      MAX_USERS users sending as fast as acknowledged
#   cluster-max   NODES nodes: the same, every DM to a user on another node (--cross-node)
# It prints a table (latency, loss, node and NATS RSS, the most NATS subjects the nodes
# held) and writes it and every run's JSON under $OUT (default bench/results/cluster-DATE).
#
#   bench/cluster.sh                              # defaults below
#   USERS=2000 NODES=3 RUNS="single-chat cluster-chat" bench/cluster.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ROOST=${ROOST:-$TARGET_DIR/release/roost}
ROOST_CLI=${ROOST_CLI:-$TARGET_DIR/release/roost-cli}
NODES=${NODES:-2}
USERS=${USERS:-4000}
MESSAGES=${MESSAGES:-6}
INTERVAL=${INTERVAL:-10s}
MAX_USERS=${MAX_USERS:-500}
MAX_MESSAGES=${MAX_MESSAGES:-100}
MAX_INFLIGHT=${MAX_INFLIGHT:-4}
PRESENCE=${PRESENCE:-3}
RUNS=${RUNS:-"single-chat cluster-chat single-max cluster-max"}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/test}
OUT=${OUT:-$ROOT/bench/results/cluster-$(date -u +%Y%m%d-%H%M)}

log() { printf '\n==> %s\n' "$*" >&2; }
for bin in "$ROOST" "$ROOST_CLI" nats-server psql; do
    command -v "$bin" >/dev/null || [ -x "$bin" ] || { echo "missing $bin (cargo build --release; apt install nats-server postgresql-client)" >&2; exit 1; }
done
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2; return 1
}
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# An unlabelled metric of the node at HTTP address $1, as an integer (0 if absent).
metric() { { curl -fsS "http://$1/metrics" 2>/dev/null || true; } | awk -v m="$2" '$1==m{printf "%d", $2; f=1} END{if(!f) print 0}'; }
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export ROOST_LOG=${ROOST_LOG:-warn}

# ---- NATS: three servers, JetStream, routed -----------------------------------------
NATS_PIDS=()
NATS_URLS=()
start_nats() {
    NATS_PIDS=(); NATS_URLS=()
    local routes=() client=() route=() i
    for i in 1 2 3; do client[$i]=$(free_port); route[$i]=$(free_port); routes+=("\"nats-route://127.0.0.1:${route[$i]}\""); done
    rm -rf "$WORK/nats"; mkdir -p "$WORK/nats"
    for i in 1 2 3; do
        cat >"$WORK/nats/n$i.conf" <<EOF
server_name: n$i
listen: "127.0.0.1:${client[$i]}"
jetstream { store_dir: "$WORK/nats/n$i", max_memory_store: 256MB, max_file_store: 1GB }
cluster { name: roost-bench, listen: "127.0.0.1:${route[$i]}", routes: [$(IFS=,; echo "${routes[*]}")] }
EOF
        nats-server -c "$WORK/nats/n$i.conf" 2>"$WORK/nats/n$i.log" &
        NATS_PIDS+=($!); PIDS+=($!)
        NATS_URLS+=("nats://127.0.0.1:${client[$i]}")
    done
    for i in 1 2 3; do wait_port "${client[$i]}"; done
    # JetStream needs a meta leader before the first node creates its stream.
    for _ in $(seq 1 300); do
        grep -q "new metadata leader" "$WORK"/nats/n*.log && return 0
        sleep 0.1
    done
    echo "NATS cluster did not elect a JetStream leader" >&2; return 1
}
stop_nats() { for pid in "${NATS_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; }

# ---- PostgreSQL: a fresh database per run ----------------------------------------------
DB=roost_bench_cluster
fresh_db() {
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
    DB_URL="${PG_ADMIN%/*}/$DB"
}

# ---- roost nodes ------------------------------------------------------------------------
NODE_PIDS=()
NODE_ADDRS=()
NODE_HTTP=()
start_nodes() { # COUNT CLUSTERED(0|1)
    NODE_PIDS=(); NODE_ADDRS=(); NODE_HTTP=()
    local n mqtt http env
    for n in $(seq 1 "$1"); do
        mqtt=$(free_port); http=$(free_port)
        rm -rf "$WORK/node$n"; mkdir -p "$WORK/node$n"
        env=(
            ROOST_NODE__DATA_DIR="$WORK/node$n"
            ROOST_MQTT__LISTEN=127.0.0.1:$mqtt
            ROOST_HTTP__LISTEN=127.0.0.1:$http
            ROOST_AUTH__JWT_SECRET="$SECRET"
            ROOST_HISTORY__DATABASE_URL="$DB_URL"
        )
        if [ "$2" = 1 ]; then
            # Each node on its own NATS server, as on separate machines.
            env+=(ROOST_CLUSTER__NODE_ID="node$n" ROOST_CLUSTER__NATS="${NATS_URLS[$(( (n - 1) % 3 ))]}")
        fi
        env "${env[@]}" "$ROOST" serve >"$OUT/node$n-$RUN.log" 2>&1 &
        NODE_PIDS+=($!); PIDS+=($!)
        NODE_ADDRS+=("127.0.0.1:$mqtt")
        NODE_HTTP+=("127.0.0.1:$http")
    done
    for addr in "${NODE_ADDRS[@]}"; do wait_port "${addr#*:}"; done
    sleep 1 # settle before the baseline RSS
}
stop_nodes() { for pid in "${NODE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; }

bench_args() {
    case $1 in
        *-chat) echo "dm --users $USERS --messages $MESSAGES --interval $INTERVAL --presence $PRESENCE" ;;
        single-max) echo "dm --users $MAX_USERS --messages $MAX_MESSAGES --interval 0 --inflight $MAX_INFLIGHT --presence $PRESENCE" ;;
        cluster-max) echo "dm --users $MAX_USERS --messages $MAX_MESSAGES --interval 0 --inflight $MAX_INFLIGHT --presence $PRESENCE --cross-node" ;;
        *) echo "unknown run $1" >&2; return 1 ;;
    esac
}

{
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); roost $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo '?'); $(nats-server --version)"
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- nodes: history in PostgreSQL ($PG_ADMIN host), JWT sign-in, ACL on; cluster: $NODES nodes, each on its own server of a 3-server NATS cluster (JetStream)"
} >"$OUT/header.md"

for RUN in $RUNS; do
    args=$(bench_args "$RUN")
    fresh_db
    case $RUN in
        single-*) start_nats; start_nodes 1 0 ;;   # NATS idles, for the same machine load
        cluster-*) start_nats; start_nodes "$NODES" 1 ;;
    esac
    log "$RUN: roost-cli bench $args --nodes $(IFS=,; echo "${NODE_ADDRS[*]}")"
    # NATS subjects the nodes subscribe for their local subscriptions, at most during the
    # run (the users unsubscribe as they leave at its end); 0 on a single node.
    echo 0 >"$OUT/$RUN.subjects"
    ( max=0; while :; do
        now=0; for http in "${NODE_HTTP[@]}"; do now=$((now + $(metric "$http" roost_cluster_subjects))); done
        [ "$now" -gt "$max" ] && max=$now && echo "$max" >"$OUT/$RUN.subjects"
        sleep 2
    done ) &
    SAMPLER=$!
    # shellcheck disable=SC2086
    if ! "$ROOST_CLI" "--secret" "$SECRET" bench $args --nodes "$(IFS=,; echo "${NODE_ADDRS[*]}")" \
        --json >"$OUT/$RUN.json"; then
        echo "warning: $RUN failed (see above)" >&2
    fi
    kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true
    node_rss=0; for pid in "${NODE_PIDS[@]}"; do node_rss=$((node_rss + $(rss_kib "$pid"))); done
    nats_rss=0; for pid in "${NATS_PIDS[@]}"; do nats_rss=$((nats_rss + $(rss_kib "$pid"))); done
    subjects=$(cat "$OUT/$RUN.subjects")
    echo "{\"nodes\": ${#NODE_PIDS[@]}, \"node_rss_kib\": $node_rss, \"nats_rss_kib\": $nats_rss, \"subjects\": $subjects}" >"$OUT/$RUN.rss.json"
    stop_nodes
    stop_nats
done

python3 - "$OUT" "$RUNS" >"$OUT/table.md" <<'PY'
import json, os, sys
out, runs = sys.argv[1], sys.argv[2].split()
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
print("| run | nodes | users | sent | received / expected | lost | dup | delivered msg/s | p50 ms | p99 ms | max ms | node RSS MiB (all) | NATS subjects (all, most) | NATS RSS MiB (3) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for run in runs:
    r, m = load(f"{run}.json"), load(f"{run}.rss.json") or {}
    if r is None:
        print(f"| {run} | failed |"); continue
    lat = r.get("latency") or {}
    f = lambda v, fmt: "-" if v is None else fmt.format(v)
    print(f"| {run} | {m.get('nodes','?')} | {r['users']} | {r['sent']} | {r['received']} / {r['expected']} | {r['lost']} | {r['duplicates']} | "
          f"{f(r.get('delivered_per_sec'), '{:.0f}')} | {f(lat.get('p50_ms'), '{:.2f}')} | {f(lat.get('p99_ms'), '{:.2f}')} | {f(lat.get('max_ms'), '{:.1f}')} | "
          f"{m.get('node_rss_kib', 0) / 1024:.1f} | {m.get('subjects', '-')} | {m.get('nats_rss_kib', 0) / 1024:.1f} |")
PY
cat "$OUT/header.md" "$OUT/table.md"
