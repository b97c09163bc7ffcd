//! Assembles the kernel's OOM report from `/dev/kmsg` records and explains a kill with it.
//!
//! Before it kills, the OOM killer prints a report (`dump_header` in `mm/oom_kill.c`):
//! `<comm> invoked oom-killer: gfp_mask=…, order=…`, for a memcg OOM `memory: usage X, limit Y,
//! failcnt N` and `Memory cgroup stats for <memcg>:` with the memcg's `memory.stat`, then the task
//! dump (`Tasks state (memory values in pages):`, a header naming the columns, one row per process of
//! the memcg, or of the machine for a global OOM) and last the `oom-kill:` summary naming the victim.
//! The formats differ across kernels: 6.1 prints a v2 memcg's stats as one record with `\x0a`
//! escapes and no `rss_anon rss_file rss_shmem` columns; 6.18 prints them (columns are read from the
//! header). The kernel holds `oom_lock` for the whole report, so reports never interleave with each
//! other, only with unrelated records, which are ignored.
//!
//! Bounded: one open report at a time, at most [`MAX_LINES_PER_REPORT`] records read into one, the
//! [`MAX_TOP_TASKS`] largest tasks kept (the others only counted and summed), and a report whose
//! summary does not come within [`REPORT_TIMEOUT`] of kernel time is dropped. The whole report is
//! rate-limited with the summary (10 per 5 s): kills beyond that have no report and are explained
//! from the `Killed process` record or BPF alone.

use std::time::Duration;

use serde::Serialize;

/// Tasks of the dump kept per report, the largest by RSS.
pub const MAX_TOP_TASKS: usize = 8;
/// Records read into one report; the rest until its summary are skipped (the report is marked
/// truncated). A global OOM dumps every process of the machine.
pub const MAX_LINES_PER_REPORT: usize = 65_536;
/// A report without its `oom-kill:` summary after this much kernel time is dropped.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// One row of the task dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskRss {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub name: String,
    /// Total RSS, kB.
    pub rss_kb: u64,
    /// Anonymous RSS, kB (kernels that print `rss_anon`, 6.2+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_anon_kb: Option<u64>,
    /// File RSS, kB (6.2+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_file_kb: Option<u64>,
    /// Shared-memory RSS, kB (6.2+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_shmem_kb: Option<u64>,
}

/// The kernel's report of one OOM kill, as far as it was printed and read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OomReport {
    /// Kernel time (µs since boot) of the `invoked oom-killer` record.
    pub usec: u64,
    /// Command of the task whose allocation invoked the OOM killer.
    pub trigger_comm: String,
    /// Its `gfp_mask=` as printed.
    pub gfp_mask: Option<String>,
    /// Its allocation order.
    pub order: Option<u32>,
    /// `memory: usage …kB`: the limit-hit memcg's usage (memcg OOMs).
    pub usage_kb: Option<u64>,
    /// `limit …kB`.
    pub limit_kb: Option<u64>,
    /// `failcnt`.
    pub failcnt: Option<u64>,
    /// `Memory cgroup stats for <path>:`.
    pub stats_memcg: Option<String>,
    /// The memcg's anonymous memory (`anon` on v2, `total_rss` on v1), kB.
    pub memcg_anon_kb: Option<u64>,
    /// Its page cache (`file` / `total_cache`), kB.
    pub memcg_file_kb: Option<u64>,
    /// Its shared memory (`shmem` / `total_shmem`), kB.
    pub memcg_shmem_kb: Option<u64>,
    /// The largest tasks of the dump by RSS, largest first (at most [`MAX_TOP_TASKS`]).
    pub top_tasks: Vec<TaskRss>,
    /// Rows of the task dump read (`None`: no dump was read).
    pub tasks: Option<u64>,
    /// Sum of their RSS, kB.
    pub tasks_rss_kb: u64,
    /// More than [`MAX_LINES_PER_REPORT`] records: the dump was not read to its end.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Head,
    Stats,
    Tasks,
}

#[derive(Debug)]
struct Open {
    report: OomReport,
    section: Section,
    /// Column names of the task dump after `[  pid  ]`.
    columns: Vec<String>,
    lines: usize,
}

/// Builds [`OomReport`]s from kernel-log messages; pure, bounded (see the module docs).
#[derive(Debug)]
pub struct ReportAssembler {
    page_kb: u64,
    open: Option<Open>,
    /// Reports dropped without their summary (timed out, or replaced by the next report).
    pub abandoned: u64,
}

impl ReportAssembler {
    /// An assembler for a kernel with pages of `page_kb` kB (the task dump counts pages).
    pub fn new(page_kb: u64) -> Self {
        Self {
            page_kb: page_kb.max(1),
            open: None,
            abandoned: 0,
        }
    }

    /// Reads one kernel-log message (kernel time `usec`). An `oom-kill:` summary is not consumed
    /// here: take the report with [`Self::finish`] when it comes.
    pub fn push(&mut self, usec: u64, message: &str) {
        if let Some((comm, rest)) = message.split_once(" invoked oom-killer: ") {
            if self.open.take().is_some() {
                self.abandoned += 1;
            }
            let mut report = OomReport {
                usec,
                trigger_comm: comm.to_owned(),
                ..OomReport::default()
            };
            for part in rest.split(", ") {
                match part.split_once('=') {
                    Some(("gfp_mask", v)) => report.gfp_mask = Some(v.to_owned()),
                    Some(("order", v)) => report.order = v.trim().parse().ok(),
                    _ => {}
                }
            }
            self.open = Some(Open {
                report,
                section: Section::Head,
                columns: Vec::new(),
                lines: 0,
            });
            return;
        }
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if usec.saturating_sub(open.report.usec) > REPORT_TIMEOUT.as_micros() as u64 {
            self.open = None;
            self.abandoned += 1;
            return;
        }
        open.lines += 1;
        if open.lines > MAX_LINES_PER_REPORT {
            open.report.truncated = true;
            return;
        }
        open.read(message, self.page_kb);
    }

    /// Closes the open report at the `oom-kill:` summary of its victim.
    pub fn finish(&mut self) -> Option<OomReport> {
        self.open.take().map(|o| o.report)
    }
}

impl Open {
    fn read(&mut self, message: &str, page_kb: u64) {
        let r = &mut self.report;
        if let Some(rest) = message.strip_prefix("memory: usage ") {
            // `memory: usage 65536kB, limit 65536kB, failcnt 5687` (mem_cgroup_print_oom_meminfo).
            let mut parts = rest.split(", ");
            r.usage_kb = parts.next().and_then(kb_value);
            r.limit_kb = parts
                .next()
                .and_then(|p| p.strip_prefix("limit "))
                .and_then(kb_value);
            r.failcnt = parts
                .next()
                .and_then(|p| p.strip_prefix("failcnt "))
                .and_then(|v| v.trim().parse().ok());
            return;
        }
        if let Some(path) = message
            .strip_prefix("Memory cgroup stats for ")
            .and_then(|p| p.strip_suffix(':'))
        {
            r.stats_memcg = Some(path.to_owned());
            self.section = Section::Stats;
            return;
        }
        if message.starts_with("Tasks state (memory values in pages)") {
            self.section = Section::Tasks;
            r.tasks = Some(0);
            return;
        }
        match self.section {
            Section::Head => {}
            Section::Stats => {
                // v2 on 6.1: one record, lines escaped as \x0a; v1 and newer: one record a line.
                for line in message.split("\\x0a") {
                    let Some((key, value)) = line.trim().split_once(' ') else {
                        continue;
                    };
                    let Ok(bytes) = value.trim().parse::<u64>() else {
                        continue;
                    };
                    let kb = Some(bytes / 1024);
                    match key {
                        "anon" | "total_rss" => r.memcg_anon_kb = kb,
                        "file" | "total_cache" => r.memcg_file_kb = kb,
                        "shmem" | "total_shmem" => r.memcg_shmem_kb = kb,
                        // v1 prints the memcg's own counters before the hierarchical totals.
                        "rss" if r.memcg_anon_kb.is_none() => r.memcg_anon_kb = kb,
                        "cache" if r.memcg_file_kb.is_none() => r.memcg_file_kb = kb,
                        _ => {}
                    }
                }
            }
            Section::Tasks => self.read_task_line(message, page_kb),
        }
    }

    fn read_task_line(&mut self, message: &str, page_kb: u64) {
        let Some(rest) = message.strip_prefix('[') else {
            return;
        };
        let Some((pid, rest)) = rest.split_once(']') else {
            return;
        };
        if pid.trim() == "pid" {
            self.columns = rest.split_whitespace().map(str::to_owned).collect();
            return;
        }
        let (Ok(pid), Some(last)) = (pid.trim().parse::<u32>(), self.columns.last()) else {
            return;
        };
        if last != "name" {
            return;
        }
        // Every column but the last (name, which may hold spaces) is a number.
        let mut rest = rest.trim_start();
        let mut task = TaskRss {
            pid,
            name: String::new(),
            rss_kb: 0,
            rss_anon_kb: None,
            rss_file_kb: None,
            rss_shmem_kb: None,
        };
        let mut have_rss = false;
        for column in &self.columns[..self.columns.len() - 1] {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let Ok(value) = rest[..end].parse::<i64>() else {
                return;
            };
            rest = rest[end..].trim_start();
            let kb = u64::try_from(value).unwrap_or(0) * page_kb;
            match column.as_str() {
                "rss" => {
                    task.rss_kb = kb;
                    have_rss = true;
                }
                "rss_anon" => task.rss_anon_kb = Some(kb),
                "rss_file" => task.rss_file_kb = Some(kb),
                "rss_shmem" => task.rss_shmem_kb = Some(kb),
                _ => {}
            }
        }
        if !have_rss {
            return;
        }
        task.name = rest.trim_end().to_owned();
        let r = &mut self.report;
        r.tasks = Some(r.tasks.unwrap_or(0) + 1);
        r.tasks_rss_kb += task.rss_kb;
        let at = r.top_tasks.partition_point(|t| t.rss_kb >= task.rss_kb);
        if at < MAX_TOP_TASKS {
            r.top_tasks.insert(at, task);
            r.top_tasks.truncate(MAX_TOP_TASKS);
        }
    }
}

/// `65536kB` → 65536.
fn kb_value(text: &str) -> Option<u64> {
    text.trim().strip_suffix("kB")?.parse().ok()
}

/// Why a kill happened, in numbers and one sentence: the victim's RSS, the limit-hit memcg's usage
/// and limit, and the largest tasks of the memcg (of the machine for a global OOM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Explanation {
    /// The kernel printed an OOM report (usage, limit, task dump) and it was read; `false` when
    /// the kill is explained from the `Killed process` record or BPF alone (rate-limited report,
    /// or not read within the tracer's wait).
    pub report: bool,
    /// The victim's anonymous RSS at the kill, kB.
    pub victim_anon_kb: Option<u64>,
    /// Its file RSS, kB.
    pub victim_file_kb: Option<u64>,
    /// Its shared-memory RSS, kB.
    pub victim_shmem_kb: Option<u64>,
    /// The memcg whose usage and limit these are (the one whose limit was hit).
    pub memcg: Option<String>,
    /// Its usage at the kill, kB.
    pub usage_kb: Option<u64>,
    /// Its limit, kB (from the cgroup's file when the kernel printed no report).
    pub limit_kb: Option<u64>,
    /// Its `failcnt` (charges that hit the limit).
    pub failcnt: Option<u64>,
    /// Its anonymous memory, kB.
    pub memcg_anon_kb: Option<u64>,
    /// Its page cache, kB.
    pub memcg_file_kb: Option<u64>,
    /// Its shared memory, kB.
    pub memcg_shmem_kb: Option<u64>,
    /// The largest tasks of the dump by RSS, largest first (at most [`MAX_TOP_TASKS`]).
    pub top_tasks: Vec<TaskRss>,
    /// Tasks in the dump.
    pub tasks: Option<u64>,
    /// Their total RSS, kB.
    pub tasks_rss_kb: Option<u64>,
    /// Command of the task whose allocation invoked the OOM killer.
    pub trigger_comm: Option<String>,
    /// Its `gfp_mask` as printed.
    pub gfp_mask: Option<String>,
    /// Everything as one clause after the subject, e.g. `was OOM-killed at its 64 MiB limit:
    /// python3 (pid 28225) held 64 MiB anon, 5 MiB file; no other tasks`.
    pub clause: String,
}

/// What [`Explanation::new`] needs of the kill.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VictimFacts<'a> {
    pub(crate) pid: u32,
    pub(crate) comm: &'a str,
    pub(crate) global: bool,
    pub(crate) anon_kb: Option<u64>,
    pub(crate) file_kb: Option<u64>,
    pub(crate) shmem_kb: Option<u64>,
    pub(crate) oom_memcg: Option<&'a str>,
    pub(crate) task_memcg: Option<&'a str>,
    /// The limit read from the cgroup's file, for a kill without the kernel's report.
    pub(crate) limit_kb: Option<u64>,
}

impl Explanation {
    pub(crate) fn new(v: VictimFacts<'_>, report: Option<&OomReport>) -> Self {
        let r = report.cloned().unwrap_or_default();
        let mut e = Self {
            report: report.is_some(),
            victim_anon_kb: v.anon_kb,
            victim_file_kb: v.file_kb,
            victim_shmem_kb: v.shmem_kb,
            memcg: r
                .stats_memcg
                .clone()
                .or_else(|| v.oom_memcg.map(str::to_owned)),
            usage_kb: r.usage_kb,
            limit_kb: r.limit_kb.or(v.limit_kb),
            failcnt: r.failcnt,
            memcg_anon_kb: r.memcg_anon_kb,
            memcg_file_kb: r.memcg_file_kb,
            memcg_shmem_kb: r.memcg_shmem_kb,
            tasks: r.tasks,
            tasks_rss_kb: r.tasks.map(|_| r.tasks_rss_kb),
            top_tasks: r.top_tasks,
            trigger_comm: report.map(|r| r.trigger_comm.clone()),
            gfp_mask: r.gfp_mask,
            clause: String::new(),
        };
        e.clause = e.render(&v);
        e
    }

    fn render(&self, v: &VictimFacts<'_>) -> String {
        let cause = if v.global {
            "was OOM-killed because the node ran out of memory".to_owned()
        } else {
            match (self.limit_kb, v.oom_memcg) {
                (Some(l), Some(oom)) if Some(oom) != v.task_memcg => {
                    format!("was OOM-killed at the {} limit of {oom}", size(l))
                }
                (Some(l), _) => format!("was OOM-killed at its {} limit", size(l)),
                (None, _) => "was OOM-killed at its memory limit".to_owned(),
            }
        };
        let mut parts: Vec<String> = Vec::new();
        if let Some(a) = v.anon_kb {
            parts.push(format!("{} anon", size(a)));
        }
        for (kb, what) in [(v.file_kb, "file"), (v.shmem_kb, "shmem")] {
            if let Some(kb) = kb.filter(|&k| k >= 1024) {
                parts.push(format!("{} {what}", size(kb)));
            }
        }
        let mut text = format!("{cause}: {} (pid {})", v.comm, v.pid);
        if !parts.is_empty() {
            text.push_str(" held ");
            text.push_str(&parts.join(", "));
        }
        if let Some(n) = self.tasks {
            let victim_kb =
                v.anon_kb.unwrap_or(0) + v.file_kb.unwrap_or(0) + v.shmem_kb.unwrap_or(0);
            let others = n.saturating_sub(1);
            let where_ = if v.global { " on the node" } else { "" };
            let rest_kb = self.tasks_rss_kb.unwrap_or(0).saturating_sub(victim_kb);
            match others {
                0 => text.push_str(&format!("; no other tasks{where_}")),
                1 => text.push_str(&format!("; 1 other task{where_} held {}", size(rest_kb))),
                n => text.push_str(&format!("; {n} other tasks{where_} held {}", size(rest_kb))),
            }
        }
        text
    }

    /// The sentence with a subject, e.g. `container app of shop/cart-0`.
    pub fn sentence(&self, subject: &str) -> String {
        format!("{subject} {}", self.clause)
    }
}

/// kB as `N MiB` (rounded) from 1 MiB up, else `N KiB`.
fn size(kb: u64) -> String {
    if kb >= 1024 {
        format!("{} MiB", (kb + 512) / 1024)
    } else {
        format!("{kb} KiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmsg::{OomRecord, parse_kmsg_record, parse_oom_message};

    /// Feeds a captured log; returns the report closed by the summary and the summary's pid.
    fn assemble(log: &str) -> (OomReport, u32) {
        let mut a = ReportAssembler::new(4);
        for line in log.lines().filter(|l| !l.starts_with(' ')) {
            let rec = parse_kmsg_record(line).unwrap();
            a.push(rec.usec, &rec.message);
            if let Ok(Some(OomRecord::Summary(s))) = parse_oom_message(&rec.message) {
                return (a.finish().expect("a report before the summary"), s.pid);
            }
        }
        panic!("no summary")
    }

    const V1_618: &str = include_str!("../tests/fixtures/kmsg/memcg_v1_kernel_6.18.kmsg");
    const V2_61: &str = include_str!("../tests/fixtures/kmsg/memcg_v2_kernel_6.1.kmsg");
    const GLOBAL_61: &str = include_str!("../tests/fixtures/kmsg/global_kernel_6.1.kmsg");

    #[test]
    fn memcg_v1_report_of_kernel_6_18() {
        let (r, pid) = assemble(V1_618);
        assert_eq!(pid, 28225);
        assert_eq!(r.trigger_comm, "python3");
        assert_eq!(r.gfp_mask.as_deref(), Some("0xcc0(GFP_KERNEL)"));
        assert_eq!(r.order, Some(0));
        assert_eq!(
            (r.usage_kb, r.limit_kb, r.failcnt),
            (Some(65536), Some(65536), Some(5687))
        );
        assert_eq!(r.stats_memcg.as_deref(), Some("/ceotest"));
        assert_eq!(r.memcg_anon_kb, Some(66_801_664 / 1024));
        assert_eq!(r.memcg_file_kb, Some(53_248 / 1024));
        assert_eq!(r.memcg_shmem_kb, Some(0));
        assert_eq!(r.tasks, Some(1));
        assert_eq!(
            r.top_tasks,
            vec![TaskRss {
                pid: 28225,
                name: "python3".into(),
                rss_kb: 17487 * 4,
                rss_anon_kb: Some(16288 * 4),
                rss_file_kb: Some(1199 * 4),
                rss_shmem_kb: Some(0),
            }]
        );
        assert!(!r.truncated);
    }

    #[test]
    fn memcg_v2_report_of_kernel_6_1_has_escaped_stats_and_no_rss_columns() {
        let (r, pid) = assemble(V2_61);
        assert_eq!(pid, 85);
        assert_eq!(
            (r.usage_kb, r.limit_kb, r.failcnt),
            (Some(49152), Some(49152), Some(19))
        );
        assert!(
            r.stats_memcg
                .as_deref()
                .unwrap()
                .ends_with("99990000.scope")
        );
        assert_eq!(r.memcg_anon_kb, Some(50_216_960 / 1024));
        assert_eq!((r.memcg_file_kb, r.memcg_shmem_kb), (Some(0), Some(0)));
        assert_eq!(r.tasks, Some(1));
        let t = &r.top_tasks[0];
        assert_eq!((t.pid, t.name.as_str(), t.rss_kb), (85, "dd", 12642 * 4));
        assert_eq!(t.rss_anon_kb, None);
    }

    #[test]
    fn global_report_of_kernel_6_1_has_no_memcg_usage() {
        let (r, pid) = assemble(GLOBAL_61);
        assert_eq!(pid, 89);
        assert_eq!((r.usage_kb, r.limit_kb, r.stats_memcg), (None, None, None));
        assert_eq!(r.tasks, Some(1));
        assert_eq!(r.top_tasks[0].rss_kb, 111_952 * 4);
    }

    #[test]
    fn keeps_the_largest_tasks_counts_all_and_tolerates_foreign_lines() {
        let mut a = ReportAssembler::new(4);
        a.push(
            1,
            "leaky invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        );
        a.push(2, "memory: usage 307200kB, limit 307200kB, failcnt 9");
        a.push(3, "Tasks state (memory values in pages):");
        a.push(3, "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name");
        a.push(4, "eth0: link up"); // another driver's record in between
        for pid in 0..100u32 {
            a.push(
                5,
                &format!(
                    "[{pid:7}]     0 {pid:5}    100    {}    1 0 0   4096   0   0 sh -c x",
                    pid + 1
                ),
            );
        }
        a.push(
            6,
            "[ 4123]     0  4123    100000    76288    76288 0 0   4096   0   0 leaky",
        );
        a.push(6, "[ broken row");
        let r = a.finish().unwrap();
        assert_eq!(r.tasks, Some(101));
        assert_eq!(r.top_tasks.len(), MAX_TOP_TASKS);
        assert_eq!(
            (r.top_tasks[0].pid, r.top_tasks[0].rss_kb),
            (4123, 76288 * 4)
        );
        assert_eq!(r.top_tasks[1].name, "sh -c x");
        assert_eq!(r.top_tasks[1].rss_kb, 100 * 4);
        assert_eq!(r.tasks_rss_kb, (76288 + (1..=100).sum::<u64>()) * 4);
        assert_eq!(a.finish(), None);
    }

    #[test]
    fn reports_are_bounded_in_lines_and_time() {
        let mut a = ReportAssembler::new(4);
        a.push(
            0,
            "x invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=0",
        );
        a.push(0, "Tasks state (memory values in pages):");
        a.push(
            0,
            "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
        );
        for pid in 0..(MAX_LINES_PER_REPORT as u32 + 10) {
            a.push(1, &format!("[{pid}] 0 {pid} 1 1 1 0 0 t"));
        }
        let r = a.finish().unwrap();
        assert!(r.truncated);
        assert_eq!(r.tasks, Some(MAX_LINES_PER_REPORT as u64 - 2));

        a.push(
            0,
            "x invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=0",
        );
        a.push(
            REPORT_TIMEOUT.as_micros() as u64 + 1,
            "memory: usage 1kB, limit 1kB, failcnt 0",
        );
        assert_eq!(a.finish(), None);
        assert_eq!(a.abandoned, 1);
        // A new report replaces one whose summary never came.
        a.push(
            0,
            "x invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=0",
        );
        a.push(
            1,
            "y invoked oom-killer: gfp_mask=0x0, order=1, oom_score_adj=0",
        );
        assert_eq!(a.abandoned, 2);
        assert_eq!(a.finish().map(|r| r.trigger_comm), Some("y".to_owned()));
    }

    #[test]
    fn sentences() {
        let (r, _) = assemble(V1_618);
        let v = VictimFacts {
            pid: 28225,
            comm: "python3",
            global: false,
            anon_kb: Some(65152),
            file_kb: Some(4796),
            shmem_kb: Some(0),
            oom_memcg: Some("/ceotest"),
            task_memcg: Some("/ceotest"),
            limit_kb: None,
        };
        let e = Explanation::new(v, Some(&r));
        assert_eq!(
            e.sentence("container app of shop/cart-0"),
            "container app of shop/cart-0 was OOM-killed at its 64 MiB limit: python3 (pid 28225) held 64 MiB anon, 5 MiB file; no other tasks"
        );
        assert_eq!(
            (e.usage_kb, e.limit_kb, e.tasks),
            (Some(65536), Some(65536), Some(1))
        );

        let mut r2 = r.clone();
        r2.tasks = Some(3);
        r2.tasks_rss_kb = 65152 + 4796 + 1024;
        let pod = VictimFacts {
            oom_memcg: Some("/kubepods/pod1"),
            ..v
        };
        assert_eq!(
            Explanation::new(pod, Some(&r2)).clause,
            "was OOM-killed at the 64 MiB limit of /kubepods/pod1: python3 (pid 28225) held 64 MiB anon, 5 MiB file; 2 other tasks held 1 MiB"
        );
        let bare = Explanation::new(v, None);
        assert!(!bare.report);
        assert_eq!(
            bare.clause,
            "was OOM-killed at its memory limit: python3 (pid 28225) held 64 MiB anon, 5 MiB file"
        );
        let from_file = Explanation::new(
            VictimFacts {
                limit_kb: Some(65536),
                ..v
            },
            None,
        );
        assert!(
            from_file
                .clause
                .starts_with("was OOM-killed at its 64 MiB limit: python3")
        );
        let (g, _) = assemble(GLOBAL_61);
        let global = VictimFacts {
            pid: 89,
            comm: "hog",
            global: true,
            anon_kb: Some(447_156),
            file_kb: Some(4),
            shmem_kb: Some(648),
            oom_memcg: None,
            task_memcg: Some("/"),
            limit_kb: None,
        };
        assert_eq!(
            Explanation::new(global, Some(&g)).clause,
            "was OOM-killed because the node ran out of memory: hog (pid 89) held 437 MiB anon; no other tasks on the node"
        );
    }
}
