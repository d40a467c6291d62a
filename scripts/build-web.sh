#!/usr/bin/env bash
# Builds the web dashboard into web/dist, which the collector's build script
# embeds: npm packages from the lock file (cached outside the clone, like
# the cargo target dir), the gRPC-web client generated from proto/, a type
# check and an esbuild bundle. Needs Node.js 20 and npm.
set -euo pipefail
cd "$(dirname "$0")/../web"
export npm_config_cache="${NIGHTJAR_NPM_CACHE:-/root/.cache/nightjar-npm}"
command -v npm >/dev/null || { echo "build-web: npm is not installed (Node.js 20 and npm are needed)" >&2; exit 1; }
# npm ci empties node_modules first; skip it while the lock file is the
# one last installed.
if ! cmp -s package-lock.json node_modules/.installed-lock 2>/dev/null; then
    npm ci --prefer-offline --no-audit --no-fund
    cp package-lock.json node_modules/.installed-lock
fi
node build.mjs
