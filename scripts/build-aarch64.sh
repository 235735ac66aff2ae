#!/usr/bin/env bash
# Builds release binaries of `roost` and `roost-cli` for 64-bit Raspberry Pi OS (aarch64,
# Pi 3, 4, 5, Zero 2 W) on a Debian or Ubuntu x86_64 machine, with Debian's cross linker.
#
#   scripts/build-aarch64.sh            # -> dist/roost-aarch64/{roost,roost-cli,SHA256SUMS}
#
# Needs: rustup's aarch64-unknown-linux-gnu standard library (downloaded from
# static.rust-lang.org by `rustup target add`), and gcc-aarch64-linux-gnu (links the
# binaries and compiles the C parts: ring, the bundled SQLite). When qemu-user is
# installed, the built binary is also started under emulation as a smoke test.
# docs/raspberry-pi.md, "Building for the Pi", says what was run where.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
OUT=dist/roost-aarch64
TARGET_DIR=${CARGO_TARGET_DIR:-target}

die() { echo "build-aarch64: $*" >&2; exit 1; }

if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "installing the $TARGET standard library (rustup target add)"
    rustup target add "$TARGET" || die "rustup target add $TARGET failed (it downloads from static.rust-lang.org)"
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
    die "aarch64-linux-gnu-gcc not found: apt-get install gcc-aarch64-linux-gnu"
fi

# The linker for the target, and the C compiler and archiver the cc crate uses for it.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# Generic aarch64 (no -C target-cpu): the same binary runs on every 64-bit Pi.

cargo build --release --locked --target "$TARGET" --bin roost --bin roost-cli

mkdir -p "$OUT"
for bin in roost roost-cli; do
    cp "$TARGET_DIR/$TARGET/release/$bin" "$OUT/$bin"
done
(cd "$OUT" && sha256sum roost roost-cli > SHA256SUMS)
file "$OUT/roost" 2>/dev/null || true

# Smoke test under emulation when available: the binary starts and runs its checks.
if command -v qemu-aarch64 >/dev/null 2>&1; then
    echo "smoke test under qemu-aarch64:"
    qemu-aarch64 -L /usr/aarch64-linux-gnu "$OUT/roost" --version
    qemu-aarch64 -L /usr/aarch64-linux-gnu "$OUT/roost-cli" --version
else
    echo "qemu-aarch64 not installed: binaries built, not started (apt-get install qemu-user)"
fi
echo "built: $OUT (copy to the Pi: scp $OUT/roost pi@pi1:/tmp/ && ssh pi1 sudo install -m 0755 /tmp/roost /usr/local/bin/)"
