/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The OOM-kill event shared by oom_tracer.bpf.c and its #[repr(C)] mirror
 * `RawOomEvent` in pressure-ebpf/src/raw.rs. Keep both in step: the test
 * `raw_event_layout_matches_btf` compares them field by field through the
 * BTF of the compiled object.
 */
#ifndef OOM_TRACER_H
#define OOM_TRACER_H

#define OOM_COMM_LEN 16
/* Path components kept per cgroup, leaf first: enough for
 * kubepods/<qos>/pod<uid>/<container> (v1) and the systemd v2 layout, with
 * room for a node nested in a container (kind). */
#define OOM_CG_DEPTH 8
/* One kernfs name; a cri-containerd-<64 hex>.scope is 85 bytes. */
#define OOM_CG_NAME_LEN 128

/* The program saw the victim's task_struct (cgroup paths and RSS valid). */
#define OOM_F_TASK 0x1
/* A SIGKILL from the OOM killer preceded the mark on this CPU: a real kill,
 * not a task that was already exiting (task_will_free_mem). */
#define OOM_F_KILLED 0x2
/* Attached as tp_btf (else the plain tracepoint). */
#define OOM_F_TP_BTF 0x4
/* rss_* are kB (plain tracepoint, >= 6.8) instead of pages. */
#define OOM_F_RSS_KB 0x8
/* The RSS fields are set. */
#define OOM_F_RSS 0x10

struct oom_cg_path {
	__u64 id;      /* kernfs id = inode number of the cgroup directory */
	__u32 depth;   /* components filled in names[], leaf first */
	__u32 truncated; /* 1 when the walk stopped before the root */
	char names[OOM_CG_DEPTH][OOM_CG_NAME_LEN];
};

struct oom_event {
	__u64 ts_boot_ns;      /* bpf_ktime_get_boot_ns() at the mark */
	__u32 pid;             /* victim thread id */
	__u32 tgid;            /* victim process id */
	__u32 uid;
	__s32 oom_score_adj;
	__u32 trigger_pid;     /* task that ran the OOM killer */
	__u32 trigger_tgid;
	__u32 flags;           /* OOM_F_* */
	__u32 _pad;
	__u64 rss_anon;
	__u64 rss_file;
	__u64 rss_shmem;
	char comm[OOM_COMM_LEN];
	char trigger_comm[OOM_COMM_LEN];
	struct oom_cg_path memcg; /* memory controller's cgroup (v1 hierarchy or v2) */
	struct oom_cg_path dfl;   /* default (v2) hierarchy cgroup */
};

#endif
