# Sourced by the benchmark scripts: a kubelet-shaped pod under this machine's cgroup v1 memory hierarchy,
# $MEM/kubepods/burstable/pod<uid>/ with two container cgroups <id1> and <id2> (64 hex digits each),
# processes run inside them, and everything removed on exit, also on failure. Needs root.
#
#   v1_pod LIMIT1 LIMIT2          makes the pod; sets uid, id1, id2, pod, work (a temp dir)
#   v1_pod_run DIR COMMAND        runs COMMAND (sh syntax) in the cgroup DIR, in the background
#   pids+=(PID)                   another process to kill on exit

MEM=/sys/fs/cgroup/memory

v1_pod() {
  [[ -f $MEM/memory.limit_in_bytes ]] || { echo "no cgroup v1 memory hierarchy at $MEM" >&2; exit 2; }
  uid=$(cat /proc/sys/kernel/random/uuid)
  id1=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  id2=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  pod=$MEM/kubepods/burstable/pod$uid
  work=$(mktemp -d)
  made=()
  pids=()
  trap v1_pod_cleanup EXIT
  local dir
  for dir in $MEM/kubepods $MEM/kubepods/burstable "$pod" "$pod/$id1" "$pod/$id2"; do
    if [[ ! -d $dir ]]; then mkdir "$dir"; made+=("$dir"); fi
  done
  echo "$1" > "$pod/$id1/memory.limit_in_bytes"
  echo "$2" > "$pod/$id2/memory.limit_in_bytes"
}

v1_pod_run() {
  sh -c "echo \$\$ > $1/cgroup.procs; exec $2" &
  pids+=($!)
}

v1_pod_cleanup() {
  local p i
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ((i = ${#made[@]} - 1; i >= 0; i--)); do rmdir "${made[i]}" 2>/dev/null || true; done
  rm -rf "$work"
}
