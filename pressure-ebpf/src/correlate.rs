//! Matches BPF marks with the kernel-log records of the same victim (by pid).
//!
//! The OOM killer prints `oom-kill:…` (rate-limited), marks the victim (the BPF event) and prints
//! `Killed process …` (never rate-limited), all under the victim's task lock, so for a kill the
//! three arrive within microseconds — but on two different file descriptors, in any order.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::event::Matched;
use crate::kmsg::{KilledProcess, OomRecord, OomSummary};
use crate::raw::{self, RawOomEvent};
use crate::report::OomReport;

/// How long a summary record waits for its `Killed process` record.
const SUMMARY_TTL: Duration = Duration::from_secs(10);

/// What the correlator knows about its inputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CorrelatorConfig {
    /// BPF events are coming.
    pub(crate) bpf: bool,
    /// Kernel-log records are coming.
    pub(crate) kmsg: bool,
    /// BPF events carry a reliable `F_KILLED` (the SIGKILL probe is attached): marks without it
    /// are tasks that were already exiting, not kills.
    pub(crate) killed_flag: bool,
    /// How long a BPF event waits for its kernel-log record.
    pub(crate) bpf_wait: Duration,
    /// How long a `Killed process` record waits for its BPF event.
    pub(crate) kmsg_wait: Duration,
}

/// Pairs records by victim pid; pure, time passed in.
#[derive(Debug)]
pub(crate) struct Correlator {
    cfg: CorrelatorConfig,
    /// Summaries by victim pid, with the report the kernel printed before each.
    summaries: HashMap<u32, (OomSummary, Option<OomReport>, Instant)>,
    killed: HashMap<u32, (KilledProcess, u64, Instant)>,
    bpf: HashMap<u32, (RawOomEvent, Instant)>,
    /// BPF marks dropped because no OOM SIGKILL preceded them.
    pub(crate) marks_without_kill: u64,
}

impl Correlator {
    pub(crate) fn new(cfg: CorrelatorConfig) -> Self {
        Self {
            cfg,
            summaries: HashMap::new(),
            killed: HashMap::new(),
            bpf: HashMap::new(),
            marks_without_kill: 0,
        }
    }

    pub(crate) fn on_bpf(&mut self, ev: RawOomEvent, now: Instant, out: &mut Vec<Matched>) {
        if self.cfg.killed_flag && ev.flags & raw::F_KILLED == 0 {
            self.marks_without_kill += 1;
            return;
        }
        let pid = ev.pid;
        if let Some((killed, usec, _)) = self.killed.remove(&pid) {
            let (summary, report) = self.take_summary(pid);
            out.push(Matched {
                bpf: Some(ev),
                summary,
                report,
                killed: Some(killed),
                kmsg_usec: Some(usec),
            });
        } else if !self.cfg.kmsg {
            out.push(Matched {
                bpf: Some(ev),
                ..Matched::default()
            });
        } else {
            self.bpf.insert(pid, (ev, now + self.cfg.bpf_wait));
        }
    }

    /// A kernel-log record; `report` is the OOM report closed by a summary record.
    pub(crate) fn on_kmsg(
        &mut self,
        rec: OomRecord,
        report: Option<OomReport>,
        usec: u64,
        now: Instant,
        out: &mut Vec<Matched>,
    ) {
        match rec {
            OomRecord::Summary(s) => {
                self.summaries.insert(s.pid, (s, report, now + SUMMARY_TTL));
            }
            OomRecord::Killed(k) => {
                let pid = k.pid;
                let (summary, report) = self.take_summary(pid);
                if let Some((ev, _)) = self.bpf.remove(&pid) {
                    out.push(Matched {
                        bpf: Some(ev),
                        summary,
                        report,
                        killed: Some(k),
                        kmsg_usec: Some(usec),
                    });
                } else if !self.cfg.bpf {
                    out.push(Matched {
                        bpf: None,
                        summary,
                        report,
                        killed: Some(k),
                        kmsg_usec: Some(usec),
                    });
                } else {
                    if let Some(s) = summary {
                        self.summaries.insert(pid, (s, report, now + SUMMARY_TTL));
                    }
                    self.killed.insert(pid, (k, usec, now + self.cfg.kmsg_wait));
                }
            }
        }
    }

    /// Emits what waited too long for its partner: a BPF event whose log record was lost, or a
    /// log record whose BPF event was (ring buffer full, kill before attach).
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Matched>) {
        self.summaries.retain(|_, (_, _, deadline)| *deadline > now);
        let due: Vec<u32> = self
            .bpf
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(p, _)| *p)
            .collect();
        for pid in due {
            if let Some((ev, _)) = self.bpf.remove(&pid) {
                let (summary, report) = self.take_summary(pid);
                out.push(Matched {
                    bpf: Some(ev),
                    summary,
                    report,
                    ..Matched::default()
                });
            }
        }
        let due: Vec<u32> = self
            .killed
            .iter()
            .filter(|(_, (_, _, d))| *d <= now)
            .map(|(p, _)| *p)
            .collect();
        for pid in due {
            if let Some((k, usec, _)) = self.killed.remove(&pid) {
                let (summary, report) = self.take_summary(pid);
                out.push(Matched {
                    bpf: None,
                    summary,
                    report,
                    killed: Some(k),
                    kmsg_usec: Some(usec),
                });
            }
        }
    }

    fn take_summary(&mut self, pid: u32) -> (Option<OomSummary>, Option<OomReport>) {
        self.summaries
            .remove(&pid)
            .map_or((None, None), |(s, r, _)| (Some(s), r))
    }

    /// The earliest instant [`Self::expire`] has work.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let b = self.bpf.values().map(|(_, d)| *d);
        let k = self.killed.values().map(|(_, _, d)| *d);
        b.chain(k).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmsg::parse_oom_message;

    fn cfg(bpf: bool, kmsg: bool) -> CorrelatorConfig {
        CorrelatorConfig {
            bpf,
            kmsg,
            killed_flag: true,
            bpf_wait: Duration::from_millis(500),
            kmsg_wait: Duration::from_secs(2),
        }
    }

    fn raw(pid: u32, flags: u32) -> RawOomEvent {
        let mut ev = RawOomEvent::from_bytes(&vec![0u8; size_of::<RawOomEvent>()]).unwrap();
        ev.pid = pid;
        ev.flags = flags;
        ev
    }

    fn rec(msg: &str) -> OomRecord {
        parse_oom_message(msg).unwrap().unwrap()
    }

    const SUMMARY: &str = "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a/b,task=t,pid=7,uid=0";
    const KILLED: &str = "Memory cgroup out of memory: Killed process 7 (t) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0";

    #[test]
    fn bpf_event_waits_for_log_records_in_either_order() {
        let t = Instant::now();
        for bpf_first in [true, false] {
            let mut c = Correlator::new(cfg(true, true));
            let mut out = Vec::new();
            c.on_kmsg(rec(SUMMARY), None, 1, t, &mut out);
            if bpf_first {
                c.on_bpf(raw(7, raw::F_KILLED), t, &mut out);
            }
            c.on_kmsg(rec(KILLED), None, 2, t, &mut out);
            if !bpf_first {
                assert!(out.is_empty());
                c.on_bpf(raw(7, raw::F_KILLED), t, &mut out);
            }
            assert_eq!(out.len(), 1);
            let m = &out[0];
            assert_eq!(
                m.summary.as_ref().map(|s| s.oom_memcg.as_deref()),
                Some(Some("/a"))
            );
            assert!(m.killed.is_some() && m.bpf.is_some());
            assert_eq!(c.next_deadline(), None);
        }
    }

    #[test]
    fn marks_without_sigkill_are_not_kills() {
        let mut c = Correlator::new(cfg(true, true));
        let mut out = Vec::new();
        c.on_bpf(raw(9, raw::F_TASK), Instant::now(), &mut out);
        assert!(out.is_empty());
        assert_eq!(c.marks_without_kill, 1);
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn unmatched_records_are_emitted_after_their_wait() {
        let t = Instant::now();
        let mut c = Correlator::new(cfg(true, true));
        let mut out = Vec::new();
        c.on_bpf(raw(1, raw::F_KILLED), t, &mut out);
        c.on_kmsg(rec(KILLED), None, 5, t, &mut out);
        assert_eq!(c.next_deadline(), Some(t + Duration::from_millis(500)));
        c.expire(t + Duration::from_millis(499), &mut out);
        assert!(out.is_empty());
        c.expire(t + Duration::from_millis(500), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bpf.map(|b| b.pid), Some(1));
        c.expire(t + Duration::from_secs(2), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[1].bpf.is_none());
        assert_eq!(out[1].killed.as_ref().map(|k| k.pid), Some(7));
    }

    #[test]
    fn kmsg_only_emits_on_the_killed_record() {
        let t = Instant::now();
        let mut c = Correlator::new(cfg(false, true));
        let mut out = Vec::new();
        c.on_kmsg(rec(SUMMARY), None, 1, t, &mut out);
        assert!(out.is_empty());
        c.on_kmsg(rec(KILLED), None, 2, t, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].summary.as_ref().map(|s| s.task_memcg.as_str()),
            Some("/a/b")
        );
        assert_eq!(out[0].kmsg_usec, Some(2));
    }
}
