#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what the tests need, then runs every
# test binary in both SIMD modes (a failing test does not stop the binaries after it).
#
# Needs the Rust toolchain. The report's browser test needs Chromium: Debian's `chromium`
# package is installed when no Chromium is found (as root, or through sudo), unless
# LENET_CHROMIUM names one. The event-file test needs TensorBoard's Python package
# (installed with pip when missing). The tests themselves use the committed MNIST subset and
# never the network.
set -euo pipefail
cd "$(dirname "$0")/.."

have_chromium() {
    [ -n "${LENET_CHROMIUM:-}" ] && return 0
    for name in chromium chromium-browser google-chrome; do
        command -v "$name" >/dev/null 2>&1 && return 0
    done
    return 1
}

if ! have_chromium; then
    echo "scripts/test.sh: no Chromium found; installing Debian's chromium package" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "scripts/test.sh: apt-get is missing: install Chromium by hand, or set" \
            "LENET_CHROMIUM to a Chromium binary" >&2
        exit 1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

# TensorBoard's reader, for the test that reads a run's event file back.
if ! python3 -c "import tensorboard" >/dev/null 2>&1; then
    echo "scripts/test.sh: installing TensorBoard's reader (pip install tensorboard)" >&2
    python3 -m pip install -q tensorboard ||
        python3 -m pip install -q --break-system-packages tensorboard
fi

cargo test --release --no-fail-fast
# The same suite on the portable code paths (no AVX-512 kernels), which processors without
# AVX-512 take.
LENET_SIMD=portable cargo test --release --no-fail-fast
