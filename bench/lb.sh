#!/usr/bin/env bash
# bench/lb.sh: the load-balancer figures of BENCHMARKS.md. A thousand users chat through
# HAProxy (deploy/haproxy.cfg) in front of three roost nodes (private NATS cluster, one
# PostgreSQL database), each sending its messages one at a time until acked and resending
# with the same id what was not; then
#   - failover: one node is killed (-9): how long until its users are back (from the
#     kill, p50 and max), how long each was away, and whether history holds every message
#     once;
#   - drain: everyone on one node, two more join, the first gets SIGTERM and drains over
#     ROOST_BENCH_DRAIN_PERIOD_S seconds: SIGTERM to exit, users back (p50/max), messages lost.
# It runs tests/lb_bench.rs (ignored by a plain `cargo test`) through scripts/test, which
# provides PostgreSQL, HAProxy and nats-server. The `FIGURES` lines are the results.
#
#   bench/lb.sh                                  1,000 users, 6 messages each, 3 s apart
#   ROOST_BENCH_CLIENTS=300 bench/lb.sh          fewer users
#   PROFILE=release bench/lb.sh                  nodes and clients built with --release
#
# Environment: ROOST_BENCH_CLIENTS (1000), ROOST_BENCH_MESSAGES (6), ROOST_BENCH_PACE_MS
# (3000), ROOST_BENCH_DRAIN_PERIOD_S (10), PROFILE (debug | release), OUT (where the
# FIGURES lines go, default bench/results/lb-figures.txt), LOG (the whole output, default
# $TMPDIR/roost-lb-bench.log).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=${PROFILE:-debug}
OUT=${OUT:-$ROOT/bench/results/lb-figures.txt}
release=()
[ "$PROFILE" = release ] && release=(--release)
export ROOST_BENCH_CLIENTS=${ROOST_BENCH_CLIENTS:-1000}
export ROOST_BENCH_MESSAGES=${ROOST_BENCH_MESSAGES:-6}
export ROOST_BENCH_PACE_MS=${ROOST_BENCH_PACE_MS:-3000}
export ROOST_BENCH_DRAIN_PERIOD_S=${ROOST_BENCH_DRAIN_PERIOD_S:-10}
# The whole run's output (the nodes' logs of a failed run among it).
log=${LOG:-${TMPDIR:-/tmp}/roost-lb-bench.log}
{
    echo "# bench/lb.sh $(date -u +%FT%TZ) on $(uname -m), $(nproc) cores, profile $PROFILE"
    echo "# clients $ROOST_BENCH_CLIENTS, messages $ROOST_BENCH_MESSAGES each, pace ${ROOST_BENCH_PACE_MS} ms, drain_period ${ROOST_BENCH_DRAIN_PERIOD_S}s"
} | tee "$OUT"
"$ROOT/scripts/test" "${release[@]}" --test lb_bench -- --ignored --test-threads 1 --nocapture \
    2>&1 | tee "$log" | grep --line-buffered -E 'FIGURES|^test |panicked' || true
# A FIGURES line may follow the test's name on the same line.
grep -o 'FIGURES.*' "$log" >>"$OUT" || true
grep -q '^test result: ok' "$log" || { echo "bench/lb.sh: a run failed; the whole output is in $log" >&2; exit 1; }
echo "figures in $OUT"
