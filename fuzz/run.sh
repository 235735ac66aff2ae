#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation on the stable toolchain
# and runs each for SECONDS (default 20), one after another. Fails on the first crash, leak
# or timeout; the reproducer is left in fuzz/artifacts/TARGET/.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# The flags are those cargo-fuzz passes with `--sanitizer none` (stable rustc accepts
# -Cpasses and -Cllvm-args); no nightly toolchain and no extra tool is needed, only a C++
# compiler for libFuzzer itself. Corpora grow in fuzz/corpus/TARGET (seeds are committed).
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-20}
shift || true
all=(mqtt_connect mqtt_packets websocket jwt chat_payload history_request)
targets=("${@:-${all[@]}}")

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks -Ccodegen-units=16"
# Not --locked: fuzz/Cargo.lock pins what it has, and a dependency the workspace crates
# gained since is resolved here as cargo would for them.
# Build for the host target explicitly, so RUSTFLAGS reach only the target's code and not
# build scripts or proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --target "$host" --bins

for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    seeds=()
    [ -d "seeds/$target" ] && seeds=("seeds/$target")
    echo "==> fuzzing $target for ${seconds}s"
    "$CARGO_TARGET_DIR/$host/release/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=131072 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 \
        "corpus/$target" "${seeds[@]}"
done
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each, no crash"
