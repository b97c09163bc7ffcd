#!/usr/bin/env bash
# Footprint of `pressured` in sidecar mode (source.mode = "cgroup") at 100 ms polling over 30 s.
# Goals (issue 3): peak RSS <= 4 MiB, CPU <= 0.035 s (the original C pressured: 7.9 MB, 0.07 s).
#
# Makes a kubelet-shaped v1 pod /sys/fs/cgroup/memory/kubepods/burstable/pod<uuid>/ with two container
# cgroups (one running `sleep`), runs `pressured` with POD_UID pointing at it, and prints peak RSS
# (VmHWM) and CPU time (sum of /proc/<pid>/task/*/schedstat, ns precision) at the end. Everything it
# creates is removed on exit. Needs root and the v1 memory hierarchy.
#
# Usage: scripts/sidecar-footprint.sh            (builds target/release/pressured)
#        PRESSURED=path/to/pressured DURATION=30 INTERVAL_MS=100 scripts/sidecar-footprint.sh
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
INTERVAL_MS=${INTERVAL_MS:-100}
MEM=/sys/fs/cgroup/memory
if [[ -z "${PRESSURED:-}" ]]; then
  cargo build --release -p pressured-cli --bin pressured >&2
  PRESSURED=target/release/pressured
fi
[[ -f $MEM/memory.limit_in_bytes ]] || { echo "no cgroup v1 memory hierarchy at $MEM" >&2; exit 2; }

uid=$(cat /proc/sys/kernel/random/uuid)
id1=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
id2=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
made=()
mk() { if [[ ! -d $1 ]]; then mkdir "$1"; made+=("$1"); fi; }
pod=$MEM/kubepods/burstable/pod$uid
work=$(mktemp -d)
pid=""
sleeper=""
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [[ -n $sleeper ]] && kill -9 "$sleeper" 2>/dev/null && wait "$sleeper" 2>/dev/null || true
  for ((i = ${#made[@]} - 1; i >= 0; i--)); do rmdir "${made[i]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
mk $MEM/kubepods; mk $MEM/kubepods/burstable; mk "$pod"; mk "$pod/$id1"; mk "$pod/$id2"
echo $((256 << 20)) > "$pod/$id1/memory.limit_in_bytes"
echo $((128 << 20)) > "$pod/$id2/memory.limit_in_bytes"
sh -c "echo \$\$ > $pod/$id1/cgroup.procs; exec sleep $((DURATION + 30))" &
sleeper=$!

cat > "$work/config.json" <<JSON
{"source": {"mode": "cgroup", "poll_interval_ms": $INTERVAL_MS, "cgroup": {"path": "/sys/fs/cgroup"}}, "log_level": "warn"}
JSON
POD_UID=$uid POD_NAME=footprint-0 POD_NAMESPACE=default NODE_NAME=$(hostname) \
  "$PRESSURED" -c "$work/config.json" > "$work/events.jsonl" 2> "$work/stderr.log" &
pid=$!
sleep "$DURATION"
kill -0 "$pid" || { echo "pressured exited early:" >&2; cat "$work/stderr.log" >&2; exit 1; }

cpu_ns=0
for t in /proc/$pid/task/*/schedstat; do cpu_ns=$((cpu_ns + $(cut -d' ' -f1 "$t"))); done
hwm_kb=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)
rss_kb=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
threads=$(awk '/^Threads/ {print $2}' /proc/$pid/status)
kill -TERM "$pid"; wait "$pid" || true; pid=""

cpu_s=$(awk -v n="$cpu_ns" 'BEGIN {printf "%.4f", n / 1e9}')
hwm_mib=$(awk -v k="$hwm_kb" 'BEGIN {printf "%.2f", k / 1024}')
rss_mib=$(awk -v k="$rss_kb" 'BEGIN {printf "%.2f", k / 1024}')
echo "sidecar footprint: ${DURATION} s at ${INTERVAL_MS} ms polling, 3 cgroups (pod + 2 containers), $threads threads"
echo "  peak RSS (VmHWM): ${hwm_mib} MiB  (goal <= 4 MiB)   RSS at end: ${rss_mib} MiB"
echo "  CPU time:         ${cpu_s} s  (goal <= 0.035 s)"
echo "  events: $(wc -l < "$work/events.jsonl"), warnings: $(grep -c WARN "$work/stderr.log" || true)"
# How the binary was linked (pressured-cli/build.rs): by lld with the hot-code order, or without it.
if readelf -p .comment "$PRESSURED" 2>/dev/null | grep -q LLD; then
  listed=$(grep -vc '^#' pressured-cli/link-order.txt)
  present=$(nm --defined-only "$PRESSURED" 2>/dev/null | awk '{print $3}' | grep -cxF -f <(grep -v '^#' pressured-cli/link-order.txt) || true)
  echo "  linked by lld with the hot-code order: $present of $listed listed functions present (stale below ~90 %: run scripts/link-order.sh)"
else
  echo "  linked without the hot-code order (no ld.lld at build time, or PRESSURED_LINK_ORDER=0)"
fi
ok=1
awk -v k="$hwm_kb" 'BEGIN {exit !(k <= 4096)}' || ok=0
awk -v n="$cpu_ns" 'BEGIN {exit !(n <= 35000000)}' || ok=0
if ((ok)); then echo "  result: within goals"; else echo "  result: OVER GOAL"; exit 1; fi
