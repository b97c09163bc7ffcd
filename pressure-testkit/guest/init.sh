#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# /init of the kernel-matrix guest (busybox sh, PID 1).
#
# Mounts the pseudo filesystems and cgroup v2, builds kubelet-shaped cgroup trees
# (systemd driver), runs the scenarios named in $SCENARIOS and reports everything
# on the serial console as lines starting with "@@KM ". The host judges the
# results (pressure-testkit/src/matrix/verdict.rs); this script only collects.
# Parameters (IDs, limits, flags) come from /etc/matrix.env, written by the host.
#
# Marker lines:
#   @@KM boot <key=value>...           once, after mounting
#   @@KM begin <scenario>
#   @@KM info <scenario> <key>=<value> facts (hog exit codes, memory.events, ...)
#   @@KM out <scenario> <line>         one stdout line of the program under test
#   @@KM err <scenario> <line>         its stderr (the last lines)
#   @@KM kmsg <scenario> <line>        the kernel's oom-kill records
#   @@KM end <scenario> rc=<n>
#   @@KM done

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up

. /etc/matrix.env
CG=/sys/fs/cgroup

say() { echo "@@KM $*"; }
info() { s=$1; shift; say info "$s" "$*"; }
# dump SCENARIO STREAM FILE [MAX_LINES]: every line (or the last MAX_LINES) with its marker.
dump() {
	if [ -n "$4" ]; then tail -n "$4" "$3"; else cat "$3"; fi | while IFS= read -r l; do
		say "$2" "$1" "$l"
	done
}
# mkcg REL: create a cgroup and every missing parent with +memory in each parent's subtree_control.
mkcg() {
	cur=$CG
	for part in $(echo "$1" | tr / ' '); do
		echo +memory >"$cur/cgroup.subtree_control" || info "$S" "error=cannot enable +memory in $cur"
		cur="$cur/$part"
		mkdir -p "$cur"
	done
}
# kmsg_mark: the number of oom-kill records in the kernel log so far.
kmsg_count() { dmesg | grep -c 'oom-kill:'; }
# flat FILE: a file's lines joined by commas, spaces made colons ("oom 1" -> "oom:1").
flat() { tr ' \n' ':,' <"$1" | sed 's/,$//'; }

sysctl -w vm.overcommit_memory=1 >/dev/null
say boot "kernel=$(uname -r)" "psi=$([ -e /proc/pressure/memory ] && echo yes || echo no)" \
	"btf=$([ -e /sys/kernel/btf/vmlinux ] && echo yes || echo no)" \
	"controllers=$(tr ' ' ',' <$CG/cgroup.controllers)" "mem_kib=$(awk '/MemTotal/ {print $2}' /proc/meminfo)"

# Scenario 1: pressured in node mode over a burstable pod whose container grows into memory.max.
run_pressured() {
	S=pressured
	say begin $S
	pod=kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${P_UID_US}.slice
	ct=$pod/cri-containerd-${P_CID}.scope
	mkcg "$ct"
	echo "$P_LIMIT" >"$CG/$ct/memory.max"
	cat >/tmp/pressured.json <<EOF
{"source": {"mode": "node", "poll_interval_ms": $P_POLL_MS, "cgroup": {"path": "$CG"}},
 "thresholds": {"warn_percent": 70, "critical_percent": 85, "cooldown_seconds": 60,
                "predict_seconds": 60, "predict_window_seconds": 10},
 "log_level": "info"}
EOF
	/bin/pressured -c /tmp/pressured.json >/tmp/p.out 2>/tmp/p.err &
	ppid=$!
	sleep "$P_SETTLE_S"
	before=$(kmsg_count)
	/bin/hog -c "$CG/$ct" -s "$P_CHUNK_KIB" -i "$P_INTERVAL_MS" -v >/tmp/hog.out 2>&1
	info $S "hog_rc=$?"
	info $S "hog_last=$(grep "^t=" /tmp/hog.out | tail -n 1)"
	sleep "$P_AFTER_S"
	info $S "alive=$(kill -0 $ppid 2>/dev/null && echo yes || echo no)"
	kill -TERM $ppid 2>/dev/null
	wait $ppid
	prc=$?
	info $S "kills=$(($(kmsg_count) - before))"
	info $S "memory.events=$(flat "$CG/$ct/memory.events")"
	dump $S out /tmp/p.out
	dump $S err /tmp/p.err 40
	say end $S "rc=$prc"
}

# Scenario 4: pressured as the chart runs a sidecar, without POD_UID: joins its own container's
# cgroup, then own cgroup, PID and mount namespaces (cgroupfs read-only there), the chart's user and
# capabilities through setpriv. The app container next to it grows into memory.max. (util-linux
# unshare makes the new mount namespace private, so the read-only remount stays in it.)
run_sidecar() {
	S=pressured-sidecar
	say begin $S
	pod=kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${S_UID_US}.slice
	ct=$pod/cri-containerd-${S_CID}.scope
	own=$pod/cri-containerd-${S_OWN_CID}.scope
	mkcg "$ct"
	mkcg "$own"
	echo "$P_LIMIT" >"$CG/$ct/memory.max"
	cat >/tmp/sidecar.json <<EOF
{"source": {"mode": "cgroup", "poll_interval_ms": $P_POLL_MS, "cgroup": {"path": "$CG"}},
 "thresholds": {"warn_percent": 70, "critical_percent": 85, "cooldown_seconds": 60,
                "predict_seconds": 60, "predict_window_seconds": 10},
 "log_level": "info"}
EOF
	chmod 644 /tmp/sidecar.json
	# shellcheck disable=SC2016,SC2086
	sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG/$own" \
		/bin/unshare-ul --cgroup --pid --mount --fork --kill-child --mount-proc -- \
		sh -c 'mount -o remount,bind,ro /sys/fs/cgroup && exec /bin/setpriv "$@"' sh \
		$S_SETPRIV -- /bin/pressured -c /tmp/sidecar.json >/tmp/s.out 2>/tmp/s.err &
	upid=$!
	sleep "$P_SETTLE_S"
	inner=$(cut -d' ' -f1 "/proc/$upid/task/$upid/children" 2>/dev/null)
	if [ -n "$inner" ]; then
		info $S "uid=$(awk '/^Uid:/ {print $2}' "/proc/$inner/status")" \
			"capeff=$(awk '/^CapEff:/ {print $2}' "/proc/$inner/status")" \
			"nonewprivs=$(awk '/^NoNewPrivs:/ {print $2}' "/proc/$inner/status")" \
			"nspid=$(awk '/^NSpid:/ {print $NF}' "/proc/$inner/status")" \
			"cgroupns=$([ "$(readlink "/proc/$inner/ns/cgroup")" != "$(readlink /proc/self/ns/cgroup)" ] && echo own || echo host)"
	fi
	before=$(kmsg_count)
	/bin/hog -c "$CG/$ct" -s "$P_CHUNK_KIB" -i "$P_INTERVAL_MS" -v >/tmp/hog.out 2>&1
	info $S "hog_rc=$?"
	sleep "$P_AFTER_S"
	info $S "alive=$([ -n "$inner" ] && kill -0 "$inner" 2>/dev/null && echo yes || echo no)"
	[ -n "$inner" ] && kill -TERM "$inner" 2>/dev/null
	wait $upid
	src=$?
	info $S "kills=$(($(kmsg_count) - before))"
	dump $S out /tmp/s.out
	# The start-up lines matter here (how the pod was found, oom_wakeups=): the whole log.
	dump $S err /tmp/s.err
	say end $S "rc=$src"
}

# One OOM of a tracer scenario: CASE POD_REL CT_REL, with hog flags after.
oom_case() {
	c=$1 pod=$2 ct=$3
	shift 3
	mkcg "$ct"
	[ "$c" = pod ] && echo "$T_LIMIT" >"$CG/$pod/memory.max"
	[ "$c" = container ] && echo "$T_LIMIT" >"$CG/$ct/memory.max"
	before=$(kmsg_count)
	/bin/hog -c "$CG/$ct" "$@" -v >/tmp/hog.out 2>&1
	hrc=$?
	info $S "case=$c hog_rc=$hrc hog_last=$(grep "^t=" /tmp/hog.out | tail -n 1)"
	sleep "$T_AFTER_S"
	info $S "case=$c kills=$(($(kmsg_count) - before))"
}

# Scenarios 2 and 3: oom-tracer --no-kubernetes through a container-limit, a pod-limit and a global OOM.
# run_tracer NAME PREFIX [extra flags]: PREFIX selects the IDs (B for bpf, K for kmsg).
run_tracer() {
	S=$1 pfx=$2
	shift 2
	say begin $S
	eval "u1=\${${pfx}1_UID} u1s=\${${pfx}1_UID_US} c1=\${${pfx}1_CID}"
	eval "u2=\${${pfx}2_UID} u2s=\${${pfx}2_UID_US} c2=\${${pfx}2_CID}"
	eval "u3=\${${pfx}3_UID} u3s=\${${pfx}3_UID_US} c3=\${${pfx}3_CID}"
	/bin/oom-tracer --no-kubernetes --metrics_bind_address "127.0.0.1:$T_PORT" "$@" >/tmp/t.out 2>/tmp/t.err &
	tpid=$!
	echo -1000 >/proc/$tpid/oom_score_adj
	start=$(cut -d' ' -f1 /proc/uptime)
	ready=no
	i=0
	while [ $i -lt "$T_READY_TIMEOUT_DS" ]; do
		kill -0 $tpid 2>/dev/null || break
		if wget -q -O /dev/null "http://127.0.0.1:$T_PORT/readyz" 2>/dev/null; then
			ready=yes
			break
		fi
		sleep 0.1
		i=$((i + 1))
	done
	info $S "ready=$ready ready_after_s=$(awk -v s="$start" '{print $1 - s}' /proc/uptime)"
	if [ "$ready" = yes ]; then
		bu=kubepods.slice/kubepods-burstable.slice
		oom_case container "$bu/kubepods-burstable-pod$u1s.slice" \
			"$bu/kubepods-burstable-pod$u1s.slice/cri-containerd-$c1.scope" -s 1024 -i 10
		oom_case pod "$bu/kubepods-burstable-pod$u2s.slice" \
			"$bu/kubepods-burstable-pod$u2s.slice/cri-containerd-$c2.scope" -s 1024 -i 10
		be=kubepods.slice/kubepods-besteffort.slice
		oom_case global "$be/kubepods-besteffort-pod$u3s.slice" \
			"$be/kubepods-besteffort-pod$u3s.slice/cri-containerd-$c3.scope" -s 1024
	fi
	info $S "alive=$(kill -0 $tpid 2>/dev/null && echo yes || echo no)"
	if wget -q -O /tmp/metrics "http://127.0.0.1:$T_PORT/metrics" 2>/dev/null; then
		grep -E '^oom_tracer_(kills_total|ringbuf|kmsg_parse)' /tmp/metrics | while IFS= read -r l; do
			info $S "metric=$l"
		done
	fi
	kill -TERM $tpid 2>/dev/null
	wait $tpid
	trc=$?
	dump $S out /tmp/t.out
	dump $S err /tmp/t.err 40
	say end $S "rc=$trc"
}

for s in $SCENARIOS; do
	case $s in
	pressured) run_pressured ;;
	tracer-bpf) run_tracer tracer-bpf B $T_BPF_FLAGS ;;
	tracer-kmsg) run_tracer tracer-kmsg K $T_KMSG_FLAGS ;;
	pressured-sidecar) run_sidecar ;;
	*) say info main "error=unknown scenario $s" ;;
	esac
done
dmesg | grep 'oom-kill:' | while IFS= read -r l; do say kmsg main "$l"; done
say done
sync
poweroff -f
