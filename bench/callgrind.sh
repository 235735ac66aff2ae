#!/usr/bin/env bash
# bench/callgrind.sh: instructions the node executes per delivered QoS 1 DM (the dmmax
# scenario's work), counted by valgrind's callgrind. Wall-clock throughput on a shared
# machine is noise; an instruction count is repeatable whatever else the machine runs.
#
# The node runs under callgrind twice with the same users: once for a short run (FEW
# messages per user) and once for a longer one (MANY). Start-up, sign-in, subscriptions,
# presence and the goodbye are the same in both, so the difference in instructions over
# the difference in delivered messages is the cost of one message: its PUBLISH in, the
# PUBACK, the routing, the delivery and its PUBACK from the recipient.
#
#   bench/callgrind.sh                                  # target/release/roost
#   ROOST=/path/to/other/roost OUT=/tmp/cg-base bench/callgrind.sh
#   USERS=50 FEW=20 MANY=100 bench/callgrind.sh          # defaults: 100, 50, 250
#
# The load generator is always this tree's roost-cli (ROOST_CLI), not measured. Prints
# one line, `instructions per message: N`, and leaves the callgrind files in $OUT for
# callgrind_annotate.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ROOST=${ROOST:-$TARGET_DIR/release/roost}
ROOST_CLI=${ROOST_CLI:-$TARGET_DIR/release/roost-cli}
USERS=${USERS:-100}
FEW=${FEW:-50}
MANY=${MANY:-250}
INFLIGHT=${INFLIGHT:-4}
PRESENCE=${PRESENCE:-3}
PORT=${PORT:-22883}
HTTP_PORT=${HTTP_PORT:-22880}
OUT=${OUT:-$ROOT/target/callgrind}

for bin in "$ROOST" "$ROOST_CLI"; do
    [ -x "$bin" ] || { echo "missing $bin" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/roost-callgrind.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# As bench/compare.sh's `roost`: no history service (older builds have no such key).
HISTORY_OFF=()
if ROOST_HISTORY__SERVICE=false "$ROOST" check-config >/dev/null 2>&1; then
    HISTORY_OFF=(ROOST_HISTORY__SERVICE=false)
fi

# One run: the node under callgrind, USERS users sending $1 messages each. Prints the
# node's total instruction count and the messages delivered (into $WORK/result-$1).
run() {
    local messages=$1 name=$OUT/callgrind.out.$1 data=$WORK/data-$1
    rm -rf "$data"; mkdir -p "$data"
    env ROOST_LOG=warn ROOST_NODE__DATA_DIR="$data" ROOST_MQTT__LISTEN=127.0.0.1:$PORT \
        ROOST_HTTP__LISTEN=127.0.0.1:$HTTP_PORT ROOST_AUTH__JWT_SECRET="$SECRET" \
        "${HISTORY_OFF[@]}" \
        valgrind --tool=callgrind --callgrind-out-file="$name" "$ROOST" serve \
        >"$OUT/node-$messages.log" 2>&1 &
    PID=$!
    local up=
    for _ in $(seq 1 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then up=1; break; fi
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.2
    done
    [ -n "$up" ] || { echo "the node did not open port $PORT (see $OUT/node-$messages.log)" >&2; exit 1; }
    "$ROOST_CLI" --port "$PORT" --secret "$SECRET" bench dm --users "$USERS" \
        --messages "$messages" --interval 0 --inflight "$INFLIGHT" --presence "$PRESENCE" \
        --json >"$OUT/bench-$messages.json" 2>"$OUT/bench-$messages.log"
    kill -TERM "$PID"
    wait "$PID" || true
    PID=
    local ir delivered
    ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$name")
    delivered=$(python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(r["received"], r["lost"], r["duplicates"])' "$OUT/bench-$messages.json")
    echo "$ir $delivered" >"$WORK/result-$messages"
}

run "$FEW"
run "$MANY"
read -r ir_few got_few lost_few dup_few <"$WORK/result-$FEW"
read -r ir_many got_many lost_many dup_many <"$WORK/result-$MANY"
echo "few:  $FEW messages x $USERS users: $ir_few instructions, $got_few delivered, lost $lost_few, duplicated $dup_few"
echo "many: $MANY messages x $USERS users: $ir_many instructions, $got_many delivered, lost $lost_many, duplicated $dup_many"
if [ "$lost_few$lost_many$dup_few$dup_many" != 0000 ]; then
    echo "warning: messages lost or duplicated" >&2
fi
python3 -c 'import sys; a,b,c,d=map(int,sys.argv[1:]); print(f"instructions per message: {(b-a)/(d-c):.0f}")' \
    "$ir_few" "$ir_many" "$got_few" "$got_many"
