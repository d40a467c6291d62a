#!/usr/bin/env bash
# The test command of README.md: installs missing build dependencies, builds
# the binaries the end-to-end tests spawn, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh
cargo build --locked --workspace --bins
cargo test --locked --workspace
