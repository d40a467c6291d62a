#!/usr/bin/env bash
# The test command of README.md: installs missing build dependencies, builds
# the dashboard and the binaries the end-to-end tests spawn, and runs the
# whole test suite, then the dashboard's tests in a real browser.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh --browser
scripts/build-web.sh
# A collector built here must carry the real dashboard (collector/build.rs).
export NIGHTJAR_REQUIRE_WEB=1
cargo build --locked --workspace --bins
cargo test --locked --workspace
scripts/test-browser.sh
