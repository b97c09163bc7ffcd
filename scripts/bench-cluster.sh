#!/usr/bin/env bash
# pressured cluster mode at scale: the fake API server with NODES x PODS pods and LATENCY_MS added to
# every request; prints pressured's cycle time (every node's summary fetched and evaluated) and RSS.
# Goals: cycle <= 1 s, RSS <= 64 MiB.
#
# Usage: scripts/bench-cluster.sh [NODES] [PODS_PER_NODE] [LATENCY_MS] [SECONDS]   (default 100 100 5 30)
set -euo pipefail
cd "$(dirname "$0")/.."
NODES="${1:-100}" PODS="${2:-100}" LATENCY="${3:-5}" SECONDS_TO_RUN="${4:-30}"
cargo build --release -q -p pressure-testkit --bin fake-apiserver -p pressured-cli --bin pressured
work="$(mktemp -d)"
cleanup() {
  [[ -n "${PRESSURED_PID:-}" ]] && kill "$PRESSURED_PID" 2>/dev/null || true
  [[ -n "${SERVER_PID:-}" ]] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
target/release/fake-apiserver --synthetic-nodes "$NODES" --synthetic-pods-per-node "$PODS" \
  --latency-ms "$LATENCY" --kubeconfig-dir "$work" >"$work/url" 2>"$work/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do [[ -s "$work/url" ]] && break; sleep 0.1; done
echo "fake API server: $(cat "$work/url") with $NODES nodes x $PODS pods, ${LATENCY} ms per request"
cat >"$work/config.json" <<JSON
{"source": {"mode": "cluster", "poll_interval_ms": 1000, "kubelet": {"log_cycles": true}},
 "thresholds": {"predict_seconds": 0}}
JSON
KUBECONFIG="$work/kubeconfig" \
  target/release/pressured -c "$work/config.json" --log-format text >"$work/events.jsonl" 2>"$work/pressured.log" &
PRESSURED_PID=$!
sleep "$SECONDS_TO_RUN"
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$PRESSURED_PID/status")
hwm_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$PRESSURED_PID/status")
grep -o 'took_ms=[0-9]*' "$work/pressured.log" | cut -d= -f2 | sort -n >"$work/cycles"
count=$(wc -l <"$work/cycles")
if [[ "$count" -eq 0 ]]; then
  echo "no completed cycles; pressured log:" >&2; tail -20 "$work/pressured.log" >&2; exit 1
fi
p50=$(awk -v n="$count" 'NR == int((n + 1) / 2) {print}' "$work/cycles")
p99=$(awk -v n="$count" 'NR == int(n * 0.99 + 0.999) {print}' "$work/cycles")
max=$(tail -1 "$work/cycles")
echo "cycles: $count; cycle time p50 ${p50} ms, p99 ${p99} ms, max ${max} ms (goal <= 1000 ms)"
echo "pressured RSS: $((rss_kib / 1024)) MiB now, $((hwm_kib / 1024)) MiB peak (goal <= 64 MiB)"
echo "events written: $(wc -l <"$work/events.jsonl")"
