#!/usr/bin/env bash
# The demo command of README.md: builds Nightjar, starts a collector and an
# agent on loopback with their built-in defaults (the agent samples every
# second), waits for live data and prints `nightjar status` and the CPU
# series, and the state of an example service made of this machine
# (docs/services.md), and the web dashboard's address (docs/dashboard.md).
# Set NIGHTJAR_DEMO_KEEP=1 to leave both running until Ctrl-C, and
# NIGHTJAR_DEMO_PORT to use other ports than the default 7070 (gRPC) and
# 7071 (HTTP: the dashboard, /healthz, /metrics).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-build-deps.sh
scripts/build-web.sh
NIGHTJAR_REQUIRE_WEB=1 cargo build --workspace --bins
bin="${CARGO_TARGET_DIR:-target}/debug"
port="${NIGHTJAR_DEMO_PORT:-7070}"
url="http://127.0.0.1:$port"
board="http://127.0.0.1:$((port + 1))/"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# One example service: this machine (the agent's default host name) and
# its agent.
host="$(hostname)"
cat >"$work/services.toml" <<EOF
[[service]]
name = "demo"
description = "This machine, watched as a service"
team = "you"

[[service.component]]
name = "this host"
layer = "machine"
matchers = ["host=$host"]

[[service.component]]
name = "its agent"
layer = "application"
metric = "agent_samples_total"
matchers = ["host=$host"]
EOF
echo 'services = ["services.toml"]' >"$work/collector.toml"

"$bin/nightjar-collector" --config "$work/collector.toml" --listen "127.0.0.1:$port" --http-listen "127.0.0.1:$((port + 1))" --data-dir "$work/data" >"$work/collector.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    "$bin/nightjar" --collector "$url" hosts >/dev/null 2>&1 && break
    kill -0 "${pids[0]}" 2>/dev/null || { cat "$work/collector.log" >&2; exit 1; }
    sleep 0.1
done

"$bin/nightjar-agent" --collector "$url" --interval 1s --state-dir "$work/agent-state" >"$work/agent.log" 2>&1 &
pids+=($!)
echo "collector on $url, agent sampling every second; waiting for data..."
for _ in $(seq 150); do
    if "$bin/nightjar" --collector "$url" query cpu_usage_percent --label cpu=total --since 1m --json 2>/dev/null | grep -q '"points": \[$'; then
        break
    fi
    sleep 0.2
done
sleep 3 # a few more seconds of points for the query below

echo
echo "\$ nightjar status"
"$bin/nightjar" --collector "$url" status
echo
echo "\$ nightjar query cpu_usage_percent --label cpu=total --since 1m --step 1s"
"$bin/nightjar" --collector "$url" query cpu_usage_percent --label cpu=total --since 1m --step 1s
echo
echo "\$ nightjar service demo"
"$bin/nightjar" --collector "$url" service demo
echo
if [ -n "${NIGHTJAR_DEMO_KEEP:-}" ]; then
    echo "The board (services, hosts, alerts, charts): open $board in a browser"
else
    echo "The board (services, hosts, alerts, charts) is at $board while the demo runs: NIGHTJAR_DEMO_KEEP=1 $0 keeps it running"
fi

if [ -n "${NIGHTJAR_DEMO_KEEP:-}" ]; then
    echo
    echo "running; try: $bin/nightjar --collector $url hosts   (Ctrl-C stops both)"
    wait
fi
