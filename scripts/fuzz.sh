#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 20 s each) on
# the corpora in fuzz/corpus (libFuzzer adds what it finds there; commit new
# corpus files that found bugs). Needs the nightly toolchain and cargo-fuzz.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz..." >&2
    cargo install cargo-fuzz --locked --quiet
fi

# Fuzz builds go to their own target dir (nightly, sanitizer flags).
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-target}-fuzz}"
for target in batch_decode spool_scan agent_config rule_file api_args; do
    echo "fuzzing $target for ${seconds}s..." >&2
    # A scratch copy of the corpus: new inputs found during CI are not kept.
    scratch=$(mktemp -d)
    cp -r "fuzz/corpus/$target/." "$scratch/"
    log="$scratch.log"
    if cargo +nightly fuzz run "$target" "$scratch" -- -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1; then
        status=0
    else
        status=$?
    fi
    grep -E "^(INFO: seed corpus|#[0-9]+ *DONE|==[0-9]+==|SUMMARY|thread '|panicked|error)" "$log" >&2 || true
    rm -rf "$scratch" "$log"
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target failed (exit $status); the crashing input is under fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "fuzz: all targets ran ${seconds}s without a crash" >&2
