// SPDX-License-Identifier: GPL-2.0-only
/*
 * Catches every OOM kill at the `oom/mark_victim` tracepoint and sends the
 * victim (ids, comm, uid, oom_score_adj, RSS, memory cgroup path, v2 cgroup
 * path) and the task that ran the OOM killer through a ring buffer.
 *
 * CO-RE without vmlinux.h: the few kernel types used are declared below with
 * preserve_access_index, so one object relocates on 6.1 ... 6.18.
 *
 * Why signal_generate too: up to 6.7 mark_victim passes only the victim's pid
 * (its task_struct argument came in 6.8, commit 72ba14deb40a). The OOM killer
 * sends SIGKILL (SEND_SIG_PRIV) to the victim and marks it right after, on the
 * same CPU under task_lock() (mm/oom_kill.c __oom_kill_process), so the last
 * such SIGKILL on this CPU names the victim's task_struct on every kernel and
 * tells a kill apart from marking an already exiting task.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "oom_tracer.h"

typedef __u64 u64;
typedef __s64 s64;
typedef __u32 u32;

/* ---- minimal kernel types (CO-RE relocated, layout irrelevant) ---- */

struct kernfs_node {
	const char *name;
	u64 id;
} __attribute__((preserve_access_index));

/* Linux >= 6.15 (kernfs: "treewide: rename kernfs_node::parent to __parent") */
struct kernfs_node___new {
	struct kernfs_node *__parent;
} __attribute__((preserve_access_index));

struct kernfs_node___old {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct cgroup_subsys_state {
	struct cgroup *cgroup;
} __attribute__((preserve_access_index));

struct css_set {
	struct cgroup_subsys_state *subsys[16];
	struct cgroup *dfl_cgrp;
} __attribute__((preserve_access_index));

enum cgroup_subsys_id {
	memory_cgrp_id = 4,
};

typedef struct {
	s64 counter;
} atomic64_t___x;

/* Linux >= 6.2: struct percpu_counter rss_stat[NR_MM_COUNTERS] */
struct percpu_counter {
	s64 count;
} __attribute__((preserve_access_index));

struct mm_struct___pcpu {
	struct percpu_counter rss_stat[4];
} __attribute__((preserve_access_index));

/* Linux < 6.2: struct mm_rss_stat { atomic_long_t count[NR_MM_COUNTERS]; } */
struct mm_rss_stat {
	atomic64_t___x count[4];
} __attribute__((preserve_access_index));

struct mm_struct___old {
	struct mm_rss_stat rss_stat;
} __attribute__((preserve_access_index));

struct mm_struct {
	int map_count;
} __attribute__((preserve_access_index));

enum mm_counter___x {
	MM_FILEPAGES___x = 0,
	MM_ANONPAGES___x = 1,
	MM_SWAPENTS___x = 2,
	MM_SHMEMPAGES___x = 3,
};

typedef struct {
	u32 val;
} kuid_t;

struct cred {
	kuid_t uid;
} __attribute__((preserve_access_index));

struct signal_struct {
	short oom_score_adj;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	char comm[16];
	struct mm_struct *mm;
	const struct cred *real_cred;
	struct signal_struct *signal;
	struct css_set *cgroups;
} __attribute__((preserve_access_index));

/* The plain tracepoint's record; fields after pid exist from 6.8 on. */
struct trace_event_raw_mark_victim {
	int pid;
	u32 __data_loc_comm;
	unsigned long anon_rss;
	unsigned long file_rss;
	unsigned long shmem_rss;
	u32 uid;
	short oom_score_adj;
} __attribute__((preserve_access_index));

struct trace_event_raw_signal_generate {
	int sig;
	int code;
	int pid;
} __attribute__((preserve_access_index));

/* ---- maps ---- */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} OOM_EVENTS SEC(".maps");

/* [0] ring-buffer reservation failures, [1] marks without a victim task */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u64);
} OOM_COUNTERS SEC(".maps");

struct kill_stash {
	u64 task;  /* struct task_struct * of the last OOM SIGKILL target */
	u32 pid;
	u32 valid;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct kill_stash);
} OOM_STASH SEC(".maps");

/* Never written: a zeroed event to clear ring-buffer slots with one copy
 * (the event is too large for an inlined memset). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct oom_event);
} OOM_ZERO SEC(".maps");

char LICENSE[] SEC("license") = "GPL";

#define SIGKILL 9
#define SI_KERNEL 0x80
#define SEND_SIG_PRIV ((void *)1)

static __always_inline void count(u32 idx)
{
	u64 *v = bpf_map_lookup_elem(&OOM_COUNTERS, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(struct kernfs_node___new, __parent))
		return BPF_CORE_READ((struct kernfs_node___new *)kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
}

static __always_inline void read_cg_path(struct oom_cg_path *out, struct cgroup *cg)
{
	struct kernfs_node *kn = BPF_CORE_READ(cg, kn);
	int i;

	if (!kn)
		return;
	out->id = BPF_CORE_READ(kn, id);
#pragma unroll
	for (i = 0; i < OOM_CG_DEPTH; i++) {
		struct kernfs_node *parent = kn_parent(kn);

		if (!parent)
			return; /* kn is the hierarchy's root: not a component */
		bpf_probe_read_kernel_str(out->names[i], OOM_CG_NAME_LEN, BPF_CORE_READ(kn, name));
		out->depth = i + 1;
		kn = parent;
	}
	if (kn_parent(kn))
		out->truncated = 1;
}

static __always_inline void read_rss(struct oom_event *e, struct task_struct *task)
{
	struct mm_struct *mm = BPF_CORE_READ(task, mm);

	if (!mm)
		return;
	if (bpf_core_type_exists(struct mm_rss_stat)) {
		struct mm_struct___old *o = (void *)mm;

		e->rss_file = BPF_CORE_READ(o, rss_stat.count[MM_FILEPAGES___x].counter);
		e->rss_anon = BPF_CORE_READ(o, rss_stat.count[MM_ANONPAGES___x].counter);
		e->rss_shmem = BPF_CORE_READ(o, rss_stat.count[MM_SHMEMPAGES___x].counter);
	} else {
		struct mm_struct___pcpu *p = (void *)mm;

		e->rss_file = BPF_CORE_READ(p, rss_stat[MM_FILEPAGES___x].count);
		e->rss_anon = BPF_CORE_READ(p, rss_stat[MM_ANONPAGES___x].count);
		e->rss_shmem = BPF_CORE_READ(p, rss_stat[MM_SHMEMPAGES___x].count);
	}
	/* The per-CPU deltas are not folded in: the same approximation the
	 * kernel prints (get_mm_counter); never report a negative sum. */
	if ((s64)e->rss_file < 0)
		e->rss_file = 0;
	if ((s64)e->rss_anon < 0)
		e->rss_anon = 0;
	if ((s64)e->rss_shmem < 0)
		e->rss_shmem = 0;
	e->flags |= OOM_F_RSS;
}

static __always_inline void fill_from_task(struct oom_event *e, struct task_struct *task)
{
	struct css_set *cs;

	e->flags |= OOM_F_TASK;
	e->pid = BPF_CORE_READ(task, pid);
	e->tgid = BPF_CORE_READ(task, tgid);
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	e->uid = BPF_CORE_READ(task, real_cred, uid.val);
	e->oom_score_adj = BPF_CORE_READ(task, signal, oom_score_adj);
	read_rss(e, task);

	cs = BPF_CORE_READ(task, cgroups);
	if (!cs)
		return;
	read_cg_path(&e->dfl, BPF_CORE_READ(cs, dfl_cgrp));
	if (bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id)) {
		u32 id = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
		struct cgroup_subsys_state *css = NULL;

		if (id < 16) {
			bpf_core_read(&css, sizeof(css), &cs->subsys[id]);
			if (css)
				read_cg_path(&e->memcg, BPF_CORE_READ(css, cgroup));
		}
	}
}

/* Takes the stashed OOM SIGKILL target of this CPU if it is `pid`. */
static __always_inline struct task_struct *take_stash(u32 pid, int *killed)
{
	u32 zero = 0;
	struct kill_stash *s = bpf_map_lookup_elem(&OOM_STASH, &zero);
	struct task_struct *task = NULL;

	*killed = 0;
	if (!s || !s->valid)
		return NULL;
	if (s->pid == pid) {
		*killed = 1;
		task = (struct task_struct *)s->task;
	}
	s->valid = 0;
	return task;
}

static __always_inline struct oom_event *reserve(void)
{
	struct oom_event *e = bpf_ringbuf_reserve(&OOM_EVENTS, sizeof(*e), 0);
	u32 zero = 0;
	void *z;

	if (!e) {
		count(0);
		return NULL;
	}
	z = bpf_map_lookup_elem(&OOM_ZERO, &zero);
	if (!z) {
		bpf_ringbuf_discard(e, 0);
		return NULL;
	}
	bpf_probe_read_kernel(e, sizeof(*e), z);
	e->ts_boot_ns = bpf_ktime_get_boot_ns();
	return e;
}

static __always_inline void fill_trigger(struct oom_event *e)
{
	u64 id = bpf_get_current_pid_tgid();

	e->trigger_pid = (u32)id;
	e->trigger_tgid = id >> 32;
	bpf_get_current_comm(&e->trigger_comm, sizeof(e->trigger_comm));
}

SEC("tp_btf/signal_generate")
int oom_sigkill_btf(u64 *ctx)
{
	/* (int sig, struct kernel_siginfo *info, struct task_struct *task, int group, int result) */
	int sig = (int)ctx[0];
	void *info = (void *)ctx[1];
	struct task_struct *task = (struct task_struct *)ctx[2];
	struct kill_stash *s;
	u32 zero = 0;

	if (sig != SIGKILL || info != SEND_SIG_PRIV)
		return 0;
	s = bpf_map_lookup_elem(&OOM_STASH, &zero);
	if (!s)
		return 0;
	s->task = (u64)task;
	s->pid = BPF_CORE_READ(task, pid);
	s->valid = 1;
	return 0;
}

SEC("tp_btf/mark_victim")
int oom_mark_victim_btf(u64 *ctx)
{
	struct task_struct *task = NULL;
	struct task_struct *stashed;
	struct oom_event *e;
	u32 pid;
	int killed;

	/* >= 6.8: (struct task_struct *task, uid_t uid); before: (int pid) */
	if (bpf_core_field_exists(struct trace_event_raw_mark_victim, uid)) {
		task = (struct task_struct *)ctx[0];
		pid = BPF_CORE_READ(task, pid);
	} else {
		pid = (u32)ctx[0];
	}
	stashed = take_stash(pid, &killed);
	if (!task)
		task = stashed;

	e = reserve();
	if (!e)
		return 0;
	e->flags |= OOM_F_TP_BTF;
	if (killed)
		e->flags |= OOM_F_KILLED;
	e->pid = pid;
	if (task)
		fill_from_task(e, task);
	else
		count(1);
	fill_trigger(e);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/signal/signal_generate")
int oom_sigkill_tp(struct trace_event_raw_signal_generate *ctx)
{
	struct kill_stash *s;
	u32 zero = 0;

	if (ctx->sig != SIGKILL || ctx->code != SI_KERNEL)
		return 0;
	s = bpf_map_lookup_elem(&OOM_STASH, &zero);
	if (!s)
		return 0;
	s->task = 0;
	s->pid = ctx->pid;
	s->valid = 1;
	return 0;
}

SEC("tracepoint/oom/mark_victim")
int oom_mark_victim_tp(struct trace_event_raw_mark_victim *ctx)
{
	struct oom_event *e;
	u32 pid = ctx->pid;
	int killed;

	take_stash(pid, &killed);
	e = reserve();
	if (!e)
		return 0;
	e->pid = pid;
	e->tgid = pid;
	if (killed)
		e->flags |= OOM_F_KILLED;
	if (bpf_core_field_exists(ctx->uid)) {
		u32 loc = ctx->__data_loc_comm;

		e->uid = ctx->uid;
		e->oom_score_adj = ctx->oom_score_adj;
		e->rss_anon = ctx->anon_rss;
		e->rss_file = ctx->file_rss;
		e->rss_shmem = ctx->shmem_rss;
		e->flags |= OOM_F_RSS | OOM_F_RSS_KB;
		bpf_probe_read_kernel_str(e->comm, sizeof(e->comm), (void *)ctx + (loc & 0xffff));
	}
	count(1);
	fill_trigger(e);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
