#!/usr/bin/env bash
# bench/compare.sh: roost and Mosquitto under the same load, back to back, in one run.
#
# For each scenario it starts a fresh broker, drives it with `roost-cli bench` (roost with
# JWT sign-in and the ACL on, via --secret; Mosquitto anonymous, via --plain, same topics),
# reads the broker's memory and CPU through --broker-pid, stops it, and moves on. At the end
# it prints a table with ratios roost/mosquitto and writes it to $OUT (Markdown), next to
# the raw JSON of every run.
#
# Profiles: `pi` (default) pins the broker to core 0 (`taskset -c 0`) and the load
# generator to core 1 (`taskset -c 1`); `free` pins nothing.
#
# Everything is overridable by environment variables (defaults below), e.g.
#   SCENARIOS="chat dmmax" CHAT_USERS=2000 bench/compare.sh
#   BROKERS="roost roost-history mosquitto" bench/compare.sh   # roost with its history service
#   PROFILE=free bench/compare.sh
# The default run takes about 15 minutes on a 2-core machine.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ROOST=${ROOST:-$TARGET_DIR/release/roost}
ROOST_CLI=${ROOST_CLI:-$TARGET_DIR/release/roost-cli}
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
# ROOST_EXTRA: a note for the table's header (e.g. which patches the roost binary has).
BUILD=${BUILD:-1}                 # 1: cargo build --release first
PROFILE=${PROFILE:-pi}            # pi | free
BROKERS=${BROKERS:-"roost mosquitto"}   # roost, roost-history, mosquitto
SCENARIOS=${SCENARIOS:-"idle chat chatfill dmmax group"}
ROOST_PORT=${ROOST_PORT:-21883}
ROOST_HTTP_PORT=${ROOST_HTTP_PORT:-21880}
MOSQ_PORT=${MOSQ_PORT:-18830}
# idle: signed-in users subscribed like phones, doing nothing (memory per connection).
# A process holds fewer sockets than `ulimit -n`: above that, raise IDLE_PROCESSES; the
# broker itself needs one descriptor per connection plus a few dozen.
IDLE_USERS=${IDLE_USERS:-19000}
IDLE_PROCESSES=${IDLE_PROCESSES:-2}
IDLE_HOLD=${IDLE_HOLD:-5s}
# chat: the issue's target load: users each sending one DM every 10 s, presence on.
CHAT_USERS=${CHAT_USERS:-4000}
CHAT_MESSAGES=${CHAT_MESSAGES:-6}
CHAT_INTERVAL=${CHAT_INTERVAL:-10s}
# dmmax: DM throughput at QoS 1: every user sends as fast as the broker acknowledges.
DMMAX_USERS=${DMMAX_USERS:-1000}
DMMAX_MESSAGES=${DMMAX_MESSAGES:-200}
DMMAX_INFLIGHT=${DMMAX_INFLIGHT:-4}
# chatfill (~6 min): the chat users again, each sending FILL_MESSAGES DMs: memory after
# sustained traffic (rumqttd kept every delivered message in RAM until this was fixed).
FILL_MESSAGES=${FILL_MESSAGES:-150}
FILL_INTERVAL=${FILL_INTERVAL:-1s}
# group: fan-out: GROUPS groups of MEMBERS, each member sending every GROUP_INTERVAL.
GROUP_GROUPS=${GROUP_GROUPS:-200}
GROUP_MEMBERS=${GROUP_MEMBERS:-20}
GROUP_MESSAGES=${GROUP_MESSAGES:-6}
GROUP_INTERVAL=${GROUP_INTERVAL:-10s}
PRESENCE=${PRESENCE:-3}           # presence topics each user watches
# Quiet machine: before each measurement wait (up to QUIET_WAIT s) until the machine is
# less than QUIET_BUSY % busy over 3 s; before the first, also until the 1-minute load
# average is below QUIET_LOAD.
QUIET_LOAD=${QUIET_LOAD:-0.7}
QUIET_BUSY=${QUIET_BUSY:-15}
QUIET_WAIT=${QUIET_WAIT:-180}
OUT=${OUT:-$ROOT/bench/results/compare-$PROFILE-$(date +%Y%m%d-%H%M%S).md}

case $PROFILE in
    pi) BROKER_CPU=(taskset -c 0); LOAD_CPU=(taskset -c 1) ;;
    free) BROKER_CPU=(); LOAD_CPU=() ;;
    *) echo "PROFILE must be pi or free" >&2; exit 2 ;;
esac

log() { printf '\n==> %s\n' "$*" >&2; }

WORK=$(mktemp -d /tmp/roost-compare.XXXXXX)
RESULTS=${OUT%.md}
mkdir -p "$RESULTS" "$(dirname "$OUT")"
BROKER_PID=

stop_broker() {
    if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    BROKER_PID=
}
cleanup() {
    stop_broker
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$BUILD" = 1 ]; then
    log "building roost and roost-cli (release)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --bin roost --bin roost-cli)
fi
for bin in "$ROOST" "$ROOST_CLI" "$MOSQUITTO"; do
    [ -x "$bin" ] || { echo "missing $bin" >&2; exit 1; }
done

SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export ROOST_LOG=${ROOST_LOG:-warn}

# Seconds the machine spent busy (user + nice + system), all cores.
busy_ticks() { awk '/^cpu /{print $2+$3+$4; exit}' /proc/stat; }
quiet() {
    local waited=0 first=${1:-}
    while :; do
        local load b0 b1 pct
        load=$(cut -d' ' -f1 /proc/loadavg)
        b0=$(busy_ticks); sleep 3; b1=$(busy_ticks)
        # ticks are 1/100 s; 3 s on $(nproc) cores
        pct=$(( (b1 - b0) * 100 / (300 * $(nproc)) ))
        if [ "$pct" -lt "$QUIET_BUSY" ] && { [ -z "$first" ] || awk -v l="$load" -v m="$QUIET_LOAD" 'BEGIN{exit !(l < m)}'; }; then
            echo "quiet: load average $load, ${pct}% busy" >&2
            return
        fi
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            echo "warning: machine not quiet after ${QUIET_WAIT}s (load $load, ${pct}% busy); measuring anyway" >&2
            echo "not quiet: load $load, ${pct}% busy" >>"$WORK/noise"
            return
        fi
        echo "waiting for a quiet machine: load average $load, ${pct}% busy" >&2
        sleep 7; waited=$((waited + 10))
    done
}

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$BROKER_PID" 2>/dev/null || { echo "broker exited" >&2; return 1; }
        sleep 0.1
    done
    echo "broker did not open port $1" >&2
    return 1
}

# Does this roost know the [history] service key? (older builds have no history service)
roost_has_history_key() {
    ROOST_HISTORY__SERVICE=false "$ROOST" check-config >/dev/null 2>&1
}

start_broker() {
    local broker=$1 data=$WORK/data-$1
    rm -rf "$data"; mkdir -p "$data"
    case $broker in
        roost|roost-history)
            local env=(
                ROOST_NODE__DATA_DIR="$data"
                ROOST_MQTT__LISTEN=127.0.0.1:$ROOST_PORT
                ROOST_HTTP__LISTEN=127.0.0.1:$ROOST_HTTP_PORT
                ROOST_AUTH__JWT_SECRET="$SECRET"
            )
            if roost_has_history_key; then
                [ "$broker" = roost ] && env+=(ROOST_HISTORY__SERVICE=false)
            elif [ "$broker" = roost-history ]; then
                echo "this roost has no history service" >&2; return 1
            fi
            env "${env[@]}" "${BROKER_CPU[@]}" "$ROOST" serve >"$RESULTS/$broker.log" 2>&1 &
            BROKER_PID=$!
            PORT=$ROOST_PORT
            AUTH=(--secret "$SECRET")
            ;;
        mosquitto)
            sed "s/^listener .*/listener $MOSQ_PORT 127.0.0.1/" "$ROOT/bench/mosquitto.conf" >"$data/mosquitto.conf"
            "${BROKER_CPU[@]}" "$MOSQUITTO" -c "$data/mosquitto.conf" >"$RESULTS/$broker.log" 2>&1 &
            BROKER_PID=$!
            PORT=$MOSQ_PORT
            AUTH=(--plain)
            ;;
        *) echo "unknown broker $broker" >&2; return 1 ;;
    esac
    wait_port "$PORT"
    sleep 1 # let it settle before the baseline RSS is read
}

scenario_args() {
    case $1 in
        idle) echo "connections --users $IDLE_USERS --processes $IDLE_PROCESSES --hold $IDLE_HOLD --presence $PRESENCE" ;;
        chat) echo "dm --users $CHAT_USERS --messages $CHAT_MESSAGES --interval $CHAT_INTERVAL --presence $PRESENCE" ;;
        chatfill) echo "dm --users $CHAT_USERS --messages $FILL_MESSAGES --interval $FILL_INTERVAL --presence $PRESENCE" ;;
        dmmax) echo "dm --users $DMMAX_USERS --messages $DMMAX_MESSAGES --interval 0 --inflight $DMMAX_INFLIGHT --presence $PRESENCE" ;;
        group) echo "group --groups $GROUP_GROUPS --members $GROUP_MEMBERS --messages $GROUP_MESSAGES --interval $GROUP_INTERVAL --presence $PRESENCE" ;;
        *) echo "unknown scenario $1" >&2; return 1 ;;
    esac
}

{
    echo "# roost vs Mosquitto, profile $PROFILE"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); roost $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo '?'); $("$MOSQUITTO" -h 2>/dev/null | head -1)"
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    case $PROFILE in
        pi) echo "- profile pi: broker on core 0 (taskset -c 0), load generator on core 1 (taskset -c 1)" ;;
        free) echo "- profile free: nothing pinned" ;;
    esac
    echo "- roost: $ROOST (built $(date -u -r "$ROOST" '+%Y-%m-%d %H:%M UTC')), JWT (HS256) sign-in and ACL on$( [ -n "${ROOST_EXTRA:-}" ] && echo ", $ROOST_EXTRA"); Mosquitto: anonymous (bench --plain), bench/mosquitto.conf"
    for s in $SCENARIOS; do echo "- $s: roost-cli bench $(scenario_args "$s")"; done
} >"$WORK/header"

quiet first
for scenario in $SCENARIOS; do
    args=$(scenario_args "$scenario")
    for broker in $BROKERS; do
        log "$scenario on $broker: roost-cli bench $args"
        quiet
        start_broker "$broker"
        json=$RESULTS/$scenario-$broker.json
        # shellcheck disable=SC2086
        if ! "${LOAD_CPU[@]}" "$ROOST_CLI" --port "$PORT" "${AUTH[@]}" bench $args \
            --broker-pid "$BROKER_PID" --json >"$json"; then
            echo "warning: $scenario on $broker failed (see above)" >&2
        fi
        # How long the broker takes to close every connection once the users are gone.
        start=$(date +%s%N)
        for _ in $(seq 1 1200); do
            [ "$(ls "/proc/$BROKER_PID/fd" 2>/dev/null | wc -l)" -lt 100 ] && break
            sleep 0.1
        done
        echo "$(( ($(date +%s%N) - start) / 1000000 ))" >"$RESULTS/$scenario-$broker.drain_ms"
        stop_broker
    done
done

# The table: one row per scenario and measure; ratios roost/mosquitto.
python3 - "$RESULTS" "$SCENARIOS" "$BROKERS" >"$WORK/table" <<'PY'
import json, os, sys
results, scenarios, brokers = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()

def load(s, b):
    try:
        with open(os.path.join(results, f"{s}-{b}.json")) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None

def drain(s, b):
    try:
        with open(os.path.join(results, f"{s}-{b}.drain_ms")) as f:
            return int(f.read().strip()) / 1000
    except (OSError, ValueError):
        return None

def get(r, *path):
    for p in path:
        if r is None:
            return None
        r = r.get(p)
    return r

mib = lambda k: None if k is None else k / 1024
measures = [
    # label, getter, format, applies to (None: all)
    ("users connected", lambda r: r["connected"], "{:.0f}", None),
    ("connects/s", lambda r: r["connects_per_sec"], "{:.0f}", None),
    ("delivered msg/s", lambda r: r.get("delivered_per_sec"), "{:.0f}", "msg"),
    ("p50 latency ms", lambda r: get(r, "latency", "p50_ms"), "{:.2f}", "msg"),
    ("p99 latency ms", lambda r: get(r, "latency", "p99_ms"), "{:.2f}", "msg"),
    ("max latency ms", lambda r: get(r, "latency", "max_ms"), "{:.1f}", "msg"),
    ("lost / duplicated", lambda r: f'{r["lost"]} / {r["duplicates"]}', "{}", "msg"),
    ("broker RSS idle MiB", lambda r: mib(get(r, "broker_idle", "rss_kib")), "{:.1f}", None),
    ("broker RSS end MiB", lambda r: mib(get(r, "broker_after", "rss_kib")), "{:.1f}", "msg"),
    ("broker RSS peak MiB", lambda r: mib(get(r, "broker_after", "rss_peak_kib") or get(r, "broker_idle", "rss_peak_kib")), "{:.1f}", None),
    ("RSS per connection KiB", lambda r: r.get("rss_per_connection_kib"), "{:.1f}", None),
    ("broker CPU s / 1000 msgs", lambda r: r.get("broker_cpu_secs_per_1000_messages"), "{:.3f}", "msg"),
    ("disconnect all, s", "drain", "{:.1f}", None),
    ("generator CPU (cores)", lambda r: r.get("generator_cpu_cores"), "{:.2f}", "msg"),
    ("other CPU (cores)", lambda r: r.get("other_cpu_cores"), "{:.2f}", "msg"),
]
no_ratio = {"lost / duplicated", "users connected", "generator CPU (cores)", "other CPU (cores)", "disconnect all, s"}
mosq = "mosquitto" in brokers
others = [b for b in brokers if b != "mosquitto"]
head = ["scenario", "measure"] + brokers + [f"{b}/mosquitto" for b in others if mosq]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for s in scenarios:
    runs = {b: load(s, b) for b in brokers}
    is_msg = s != "idle"
    for label, fn, fmt, kind in measures:
        if kind == "msg" and not is_msg:
            continue
        vals = {}
        for b, r in runs.items():
            try:
                vals[b] = drain(s, b) if fn == "drain" else (fn(r) if r else None)
            except (KeyError, TypeError):
                vals[b] = None
        cells = [s, label] + ["-" if vals[b] is None else fmt.format(vals[b]) for b in brokers]
        if mosq:
            for b in others:
                x, m = vals.get(b), vals.get("mosquitto")
                ok = isinstance(x, (int, float)) and isinstance(m, (int, float)) and m and label not in no_ratio
                cells.append(f"{x / m:.2f}" if ok else "")
        print("| " + " | ".join(cells) + " |")
PY

{
    cat "$WORK/header"
    if [ -s "$WORK/noise" ]; then
        echo "- NOISE: $(tr '\n' ';' <"$WORK/noise")"
    fi
    echo
    cat "$WORK/table"
    echo
    echo "Raw results: $RESULTS/"
} >"$OUT"
echo
cat "$OUT"
