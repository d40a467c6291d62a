#!/usr/bin/env bash
# The dashboard's browser tests (web/e2e): Debian's Chromium driven by
# playwright-core against the real collector, agent and CLI binaries, which
# must be built first (scripts/test.sh does). Screenshots of every page are
# kept in $NIGHTJAR_ARTIFACTS/screenshots (default web/test-results).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export NIGHTJAR_ARTIFACTS="${NIGHTJAR_ARTIFACTS:-$PWD/web/test-results}"
cd web
node --test --test-reporter=spec e2e/
echo "browser tests: screenshots in $NIGHTJAR_ARTIFACTS/screenshots"
