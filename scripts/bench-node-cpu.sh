#!/usr/bin/env bash
# CPU and memory of `pressured` in node mode (source.mode = "node") watching 1 000 containers at 1 s.
# Goals: <= 2 % of one core (issue 3); <= 16 MB charged to its own memory cgroup, kernel memory
# included (memory.usage_in_bytes: what a DaemonSet's memory limit counts), open files bounded (issue 19).
#
# Builds a kubelet-shaped tree of 100 pods x 10 containers (v1 memory cgroups, 256 MiB limits) under a
# unique parent /sys/fs/cgroup/memory/pressure-nodecpu-<uuid>/kubepods/burstable/, points
# source.cgroup.path at that parent (layout detection treats a v1 memory cgroup as the memory root),
# starts `pressured` in a memory cgroup of its own (a sibling, no limit) with its binary's pages
# evicted from the page cache first (so they are charged to it, as in a fresh container), lets it
# start, then measures its CPU time (sum of /proc/<pid>/task/*/schedstat) over DURATION seconds of
# steady state and prints it as a share of one core, side by side with its RSS, the memory charged to
# its cgroup (memory.usage_in_bytes, of which kernel memory: memory.kmem.usage_in_bytes) and its open
# files. Exits 1 when a goal is missed. Everything is removed on exit. Needs root and the v1 memory
# hierarchy.
#
# Usage: scripts/bench-node-cpu.sh               (builds target/release/pressured)
#        PRESSURED=path DURATION=60 PODS=100 CONTAINERS=10 INTERVAL_MS=1000 OPEN_FILES=n scripts/bench-node-cpu.sh
#        (OPEN_FILES sets source.cgroup.open_files; unset: the default)
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
self=$parent-self
work=$(mktemp -d)
pid=""
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [[ -d $self ]] && { rmdir "$self" 2>/dev/null || echo "could not remove $self" >&2; }
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

open_files=""
[[ -n ${OPEN_FILES:-} ]] && open_files=", \"open_files\": $OPEN_FILES"
cat > "$work/config.json" <<JSON
{"source": {"mode": "node", "poll_interval_ms": $INTERVAL_MS, "cgroup": {"path": "$parent"$open_files}}, "log_level": "info"}
JSON
mkdir "$self"
# Evict the binary's pages so that its own cgroup is charged for them, as in a fresh container.
sync "$PRESSURED"
python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$PRESSURED" || true
(echo "$BASHPID" > "$self/cgroup.procs" && exec "$PRESSURED" -c "$work/config.json") > "$work/events.jsonl" 2> "$work/stderr.log" &
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
charged=$(cat "$self/memory.usage_in_bytes")
kmem=$(cat "$self/memory.kmem.usage_in_bytes" 2>/dev/null || echo 0)
peak=$(cat "$self/memory.max_usage_in_bytes")
# What the charge is made of: anonymous memory, page cache (the binary's pages), kernel memory.
stat_line=$(awk '$1 == "rss" || $1 == "cache" || $1 == "mapped_file" { printf "%s %.1f MB, ", $1, $2 / 1e6 }' "$self/memory.stat")
kill -TERM "$pid"; wait "$pid" || true; pid=""

watched=$(grep -o 'watching [0-9]* cgroups' "$work/stderr.log" | head -1)
awk -v c=$((end_cpu - start_cpu)) -v w=$((end_ns - start_ns)) -v n="$total" -v i="$INTERVAL_MS" \
    -v rss="$rss_kb" -v fds="$fds" -v watched="$watched" -v charged="$charged" -v kmem="$kmem" \
    -v peak="$peak" -v stat_line="$stat_line" 'BEGIN {
  pct = 100 * c / w; cycles = w / 1e6 / i
  printf "node mode: %d containers (%s: containers + pods), %d ms interval, %.1f s measured\n", n, watched, i, w / 1e9
  printf "  CPU: %.3f s = %.2f %% of one core (goal <= 2 %%)\n", c / 1e9, pct
  printf "  per cycle: %.2f ms; per container sample (incl. loop and rescans): %.1f us\n", c / 1e6 / cycles, c / 1e3 / cycles / n
  printf "  %-10s %-12s %-34s %-24s %s\n", "CPU", "RSS", "charged to own memcg (goal <= 16 MB)", "of which kernel memory", "open files"
  printf "  %-10s %-12s %-34s %-24s %d\n", sprintf("%.2f %%", pct), sprintf("%.1f MiB", rss / 1024), sprintf("%.1f MB (peak %.1f MB)", charged / 1e6, peak / 1e6), sprintf("%.1f MB", kmem / 1e6), fds
  printf "  charge made of: %skernel %.1f MB\n", stat_line, kmem / 1e6
  if (pct <= 2 && charged <= 16e6) print "  result: within goal"; else { print "  result: OVER GOAL"; exit 1 }
}'
