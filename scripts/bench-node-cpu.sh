#!/usr/bin/env bash
# CPU cost of `pressured` in node mode (source.mode = "node") watching 1 000 containers at 1 s.
# Goal (issue 3): <= 2 % of one core.
#
# Builds a kubelet-shaped tree of 100 pods x 10 containers (v1 memory cgroups, 256 MiB limits) under a
# unique parent /sys/fs/cgroup/memory/pressure-nodecpu-<uuid>/kubepods/burstable/, points
# source.cgroup.path at that parent (layout detection treats a v1 memory cgroup as the memory root),
# lets `pressured` start, then measures its CPU time (sum of /proc/<pid>/task/*/schedstat) over
# DURATION seconds of steady state and prints it as a share of one core. Everything is removed on exit.
# Needs root and the v1 memory hierarchy.
#
# Usage: scripts/bench-node-cpu.sh               (builds target/release/pressured)
#        PRESSURED=path DURATION=60 PODS=100 CONTAINERS=10 INTERVAL_MS=1000 scripts/bench-node-cpu.sh
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}
PODS=${PODS:-100}
CONTAINERS=${CONTAINERS:-10}
INTERVAL_MS=${INTERVAL_MS:-1000}
MEM=/sys/fs/cgroup/memory
if [[ -z "${PRESSURED:-}" ]]; then
  cargo build --release -p pressured-cli --bin pressured >&2
  PRESSURED=target/release/pressured
fi
[[ -f $MEM/memory.limit_in_bytes ]] || { echo "no cgroup v1 memory hierarchy at $MEM" >&2; exit 2; }

parent=$MEM/pressure-nodecpu-$(cat /proc/sys/kernel/random/uuid)
work=$(mktemp -d)
pid=""
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  if [[ -d $parent ]]; then
    find "$parent" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
    rmdir "$parent" 2>/dev/null || echo "could not remove $parent" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$parent/kubepods/burstable"
for ((p = 0; p < PODS; p++)); do
  pod=$parent/kubepods/burstable/pod$(cat /proc/sys/kernel/random/uuid)
  mkdir "$pod"
  for ((c = 0; c < CONTAINERS; c++)); do
    id=$(printf '%08x' "$p" "$c" "$RANDOM" "$RANDOM" "$RANDOM" "$RANDOM" "$RANDOM" "$RANDOM")
    mkdir "$pod/$id"
    echo $((256 << 20)) > "$pod/$id/memory.limit_in_bytes"
  done
done
total=$((PODS * CONTAINERS))

cat > "$work/config.json" <<JSON
{"source": {"mode": "node", "poll_interval_ms": $INTERVAL_MS, "cgroup": {"path": "$parent"}}, "log_level": "info"}
JSON
"$PRESSURED" -c "$work/config.json" > "$work/events.jsonl" 2> "$work/stderr.log" &
pid=$!
cpu() { local s=0 t; for t in /proc/$pid/task/*/schedstat; do s=$((s + $(cut -d' ' -f1 "$t"))); done; echo $s; }
# Let it start and open every cgroup, then measure steady state.
for _ in $(seq 100); do grep -q "watching" "$work/stderr.log" && break; sleep 0.1; done
sleep 2
kill -0 "$pid" || { echo "pressured exited early:" >&2; cat "$work/stderr.log" >&2; exit 1; }
start_cpu=$(cpu); start_ns=$(date +%s%N)
sleep "$DURATION"
end_cpu=$(cpu); end_ns=$(date +%s%N)
rss_kb=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
fds=$(ls /proc/$pid/fd | wc -l)
kill -TERM "$pid"; wait "$pid" || true; pid=""

watched=$(grep -o 'watching [0-9]* cgroups' "$work/stderr.log" | head -1)
awk -v c=$((end_cpu - start_cpu)) -v w=$((end_ns - start_ns)) -v n="$total" -v i="$INTERVAL_MS" \
    -v rss="$rss_kb" -v fds="$fds" -v watched="$watched" 'BEGIN {
  pct = 100 * c / w; cycles = w / 1e6 / i
  printf "node mode: %d containers (%s: containers + pods), %d ms interval, %.1f s measured\n", n, watched, i, w / 1e9
  printf "  CPU: %.3f s = %.2f %% of one core (goal <= 2 %%)\n", c / 1e9, pct
  printf "  per cycle: %.2f ms; per container sample (incl. loop and rescans): %.1f us\n", c / 1e6 / cycles, c / 1e3 / cycles / n
  printf "  RSS: %.1f MiB, open fds: %d\n", rss / 1024, fds
  if (pct <= 2) print "  result: within goal"; else { print "  result: OVER GOAL"; exit 1 }
}'
