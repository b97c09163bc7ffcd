#!/usr/bin/env bash
# pressured cluster mode at scale: NODES x PODS pods, every node's Summary API read through the API
# server's node proxy; prints pressured's cycle time (every node's summary fetched and evaluated) and
# RSS, and the API server's CPU and RSS over the run. Goals: cycle <= 1 s, RSS <= 64 MiB.
#
# By default against a real kube-apiserver + etcd (pressure-testkit's control-plane: NODES kubelet
# stand-ins on 127.0.0.x, pods in etcd), pressured authenticated as the pressured chart's cluster-mode
# ServiceAccount. BENCH_APISERVER=fake uses the fake API server instead, with LATENCY_MS added to every
# request (fault injection a real server cannot do).
#
# Usage: scripts/bench-cluster.sh [NODES] [PODS_PER_NODE] [LATENCY_MS] [SECONDS]   (default 100 100 5 30)
set -euo pipefail
cd "$(dirname "$0")/.."
NODES="${1:-100}" PODS="${2:-100}" LATENCY="${3:-5}" SECONDS_TO_RUN="${4:-30}"
MODE="${BENCH_APISERVER:-real}"
work="$(mktemp -d)"
cleanup() {
  [[ -n "${PRESSURED_PID:-}" ]] && kill "$PRESSURED_PID" 2>/dev/null || true
  exec 3>&- 2>/dev/null || true # the control plane exits when its stdin closes
  [[ -n "${SERVER_PID:-}" && "$MODE" = fake ]] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

if [[ "$MODE" = fake ]]; then
  cargo build --release -q -p pressure-testkit --bin fake-apiserver -p pressured-cli --bin pressured
  target/release/fake-apiserver --synthetic-nodes "$NODES" --synthetic-pods-per-node "$PODS" \
    --latency-ms "$LATENCY" --kubeconfig-dir "$work" >"$work/url" 2>"$work/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do [[ -s "$work/url" ]] && break; sleep 0.1; done
  echo "fake API server: $(cat "$work/url") with $NODES nodes x $PODS pods, ${LATENCY} ms per request"
  kubeconfig="$work/kubeconfig"
  api_pid=$SERVER_PID
else
  pressure-testkit/scripts/kube-apiserver.sh >/dev/null
  cargo build --release -q -p pressure-testkit --bin control-plane -p pressured-cli --bin pressured
  mkfifo "$work/hold"
  target/release/control-plane --nodes "$NODES" --pods-per-node "$PODS" --exit-on-stdin-eof \
    --chart charts/pressured --chart-values '{"mode": "cluster"}' \
    <"$work/hold" >"$work/cp.out" 2>"$work/cp.log" &
  SERVER_PID=$!
  exec 3>"$work/hold"
  for _ in $(seq 1200); do
    grep -q '^ready$' "$work/cp.out" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$work/cp.log" >&2; exit 1; }
    sleep 0.5
  done
  grep -q '^ready$' "$work/cp.out" || { echo "control plane not ready" >&2; cat "$work/cp.log" >&2; exit 1; }
  cat "$work/cp.log"
  kubeconfig="$(awk '/^sa kubeconfig:/ {print $3}' "$work/cp.out")"
  api_pid="$(awk '/^apiserver pid:/ {print $3}' "$work/cp.out")"
  echo "real kube-apiserver $(awk '/^server:/ {print $2}' "$work/cp.out") with $NODES nodes x $PODS pods" \
    "(kubelet stand-ins on 127.0.0.x), pressured as the chart's cluster-mode ServiceAccount"
fi
cat >"$work/config.json" <<JSON
{"source": {"mode": "cluster", "poll_interval_ms": 1000, "kubelet": {"log_cycles": true}},
 "thresholds": {"predict_seconds": 0}}
JSON
hz=$(getconf CLK_TCK)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
api_before=$(cpu_ticks "$api_pid")
KUBECONFIG="$kubeconfig" \
  target/release/pressured -c "$work/config.json" --log-format text >"$work/events.jsonl" 2>"$work/pressured.log" &
PRESSURED_PID=$!
sleep "$SECONDS_TO_RUN"
api_after=$(cpu_ticks "$api_pid")
pressured_ticks=$(cpu_ticks "$PRESSURED_PID")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$PRESSURED_PID/status")
hwm_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$PRESSURED_PID/status")
api_rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$api_pid/status")
grep -o 'took_ms=[0-9]*' "$work/pressured.log" | cut -d= -f2 | sort -n >"$work/cycles"
count=$(wc -l <"$work/cycles")
if [[ "$count" -eq 0 ]]; then
  echo "no completed cycles; pressured log:" >&2; tail -20 "$work/pressured.log" >&2; exit 1
fi
p50=$(awk -v n="$count" 'NR == int((n + 1) / 2) {print}' "$work/cycles")
p99=$(awk -v n="$count" 'NR == int(n * 0.99 + 0.999) {print}' "$work/cycles")
max=$(tail -1 "$work/cycles")
echo "cycles: $count; cycle time p50 ${p50} ms, p99 ${p99} ms, max ${max} ms (goal <= 1000 ms)"
echo "pressured RSS: $((rss_kib / 1024)) MiB now, $((hwm_kib / 1024)) MiB peak (goal <= 64 MiB);" \
  "CPU $(awk -v t="$pressured_ticks" -v hz="$hz" -v s="$SECONDS_TO_RUN" 'BEGIN {printf "%.0f%%", 100 * t / hz / s}') of one core"
echo "API server ($MODE): CPU $(awk -v t=$((api_after - api_before)) -v hz="$hz" -v s="$SECONDS_TO_RUN" \
  'BEGIN {printf "%.0f%%", 100 * t / hz / s}') of one core over ${SECONDS_TO_RUN} s, RSS $((api_rss_kib / 1024)) MiB"
echo "load average (1/5/15 min): $load_before before, $load_after after (2 vCPUs)"
echo "events written: $(wc -l <"$work/events.jsonl"); 403s in pressured's log: $(grep -c ' 403\|Forbidden' "$work/pressured.log" || true)"
