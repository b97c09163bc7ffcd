//! Parses the kernel log records the OOM killer writes (`/dev/kmsg` format).
//!
//! Two records matter, both from `mm/oom_kill.c`: the summary
//! `oom-kill:constraint=…,oom_memcg=…,task_memcg=…,task=…,pid=…,uid=…` (printed by `dump_header`,
//! which the kernel rate-limits to 10 per 5 s) and the never rate-limited
//! `Memory cgroup out of memory: Killed process <pid> (<comm>) … oom_score_adj:<n>`.

use crate::error::KmsgError;

/// One `/dev/kmsg` record: `prio,seq,usec,flags;message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Syslog priority and facility (`facility << 3 | level`).
    pub priority: u32,
    /// Sequence number; a gap means records were overwritten before being read.
    pub seq: u64,
    /// Microseconds since boot (the kernel's `local_clock`).
    pub usec: u64,
    /// The message, without continuation (dictionary) lines.
    pub message: String,
}

/// Parses one record (its first line; continuation lines start with a space and are dropped).
pub fn parse_kmsg_record(text: &str) -> Result<KmsgRecord, KmsgError> {
    let first = text.lines().next().unwrap_or("");
    let (header, message) = first.split_once(';').ok_or_else(|| KmsgError::Malformed {
        field: "header",
        record: first.to_owned(),
    })?;
    let mut parts = header.split(',');
    let mut next = |field: &'static str| -> Result<u64, KmsgError> {
        parts
            .next()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| KmsgError::Malformed {
                field,
                record: first.to_owned(),
            })
    };
    let priority = next("priority")?;
    let seq = next("seq")?;
    let usec = next("usec")?;
    Ok(KmsgRecord {
        priority: u32::try_from(priority).unwrap_or(u32::MAX),
        seq,
        usec,
        message: message.to_owned(),
    })
}

/// The `oom-kill:` summary record of one kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomSummary {
    /// `CONSTRAINT_NONE`, `CONSTRAINT_MEMCG`, `CONSTRAINT_CPUSET` or `CONSTRAINT_MEMORY_POLICY`.
    pub constraint: String,
    /// `nodemask=` as printed (`(null)` when none).
    pub nodemask: String,
    /// `cpuset=` of the victim.
    pub cpuset: String,
    /// `mems_allowed=` of the victim.
    pub mems_allowed: String,
    /// The cgroup whose limit was hit (memcg OOMs only).
    pub oom_memcg: Option<String>,
    /// The record says `global_oom`.
    pub global_oom: bool,
    /// The victim's memory cgroup.
    pub task_memcg: String,
    /// Victim comm.
    pub task: String,
    /// Victim pid.
    pub pid: u32,
    /// Victim uid.
    pub uid: u32,
}

/// The `Killed process` record of one kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KilledProcess {
    /// The text before `: Killed process` (`Memory cgroup out of memory`, `Out of memory`, …).
    pub reason: String,
    /// Victim pid.
    pub pid: u32,
    /// Victim comm.
    pub comm: String,
    /// `total-vm` in kB.
    pub total_vm_kb: u64,
    /// `anon-rss` in kB.
    pub anon_rss_kb: u64,
    /// `file-rss` in kB.
    pub file_rss_kb: u64,
    /// `shmem-rss` in kB.
    pub shmem_rss_kb: u64,
    /// Victim uid.
    pub uid: u32,
    /// `oom_score_adj` of the victim.
    pub oom_score_adj: i32,
}

impl KilledProcess {
    /// The kill came from a memory cgroup's limit.
    pub fn is_memcg(&self) -> bool {
        self.reason.starts_with("Memory cgroup out of memory")
    }
}

/// An OOM-killer record from the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OomRecord {
    /// `oom-kill:constraint=…`.
    Summary(OomSummary),
    /// `…: Killed process …`.
    Killed(KilledProcess),
}

/// Parses a kernel log message: `Ok(None)` for messages that are not OOM-kill records.
pub fn parse_oom_message(message: &str) -> Result<Option<OomRecord>, KmsgError> {
    if let Some(rest) = message.strip_prefix("oom-kill:") {
        return parse_summary(rest).map(|s| Some(OomRecord::Summary(s)));
    }
    if let Some((reason, rest)) = message.split_once(": Killed process ") {
        return parse_killed(reason, rest).map(|k| Some(OomRecord::Killed(k)));
    }
    Ok(None)
}

fn malformed(field: &'static str, record: &str) -> KmsgError {
    KmsgError::Malformed {
        field,
        record: record.to_owned(),
    }
}

// Parsed from the right: comms and cgroup names may contain commas, the trailing keys are fixed
// (mm/oom_kill.c dump_oom_victim / dump_oom_summary).
fn parse_summary(text: &str) -> Result<OomSummary, KmsgError> {
    let (rest, uid) = text
        .rsplit_once(",uid=")
        .ok_or_else(|| malformed("uid", text))?;
    let uid = uid.trim().parse().map_err(|_| malformed("uid", text))?;
    let (rest, pid) = rest
        .rsplit_once(",pid=")
        .ok_or_else(|| malformed("pid", text))?;
    let pid = pid.parse().map_err(|_| malformed("pid", text))?;
    let (rest, task) = rest
        .rsplit_once(",task=")
        .ok_or_else(|| malformed("task", text))?;
    let (head, task_memcg) = rest
        .rsplit_once(",task_memcg=")
        .ok_or_else(|| malformed("task_memcg", text))?;
    let mut constraint = None;
    let mut nodemask = None;
    let mut cpuset = None;
    let mut mems_allowed = None;
    let mut oom_memcg = None;
    let mut global_oom = false;
    // oom_memcg= is last in the head and a path: split it off before splitting on commas.
    let head = match head.split_once(",oom_memcg=") {
        Some((h, memcg)) => {
            oom_memcg = Some(memcg.to_owned());
            h
        }
        None => head,
    };
    for part in head.split(',') {
        match part.split_once('=') {
            Some(("constraint", v)) => constraint = Some(v.to_owned()),
            Some(("nodemask", v)) => nodemask = Some(v.to_owned()),
            Some(("cpuset", v)) => cpuset = Some(v.to_owned()),
            Some(("mems_allowed", v)) => mems_allowed = Some(v.to_owned()),
            None if part == "global_oom" => global_oom = true,
            // mems_allowed is a list like 0-1,3: keep the pieces.
            None => {
                if let Some(m) = mems_allowed.as_mut() {
                    m.push(',');
                    m.push_str(part);
                }
            }
            Some(_) => {}
        }
    }
    Ok(OomSummary {
        constraint: constraint.ok_or_else(|| malformed("constraint", text))?,
        nodemask: nodemask.unwrap_or_default(),
        cpuset: cpuset.unwrap_or_default(),
        mems_allowed: mems_allowed.unwrap_or_default(),
        oom_memcg,
        global_oom,
        task_memcg: task_memcg.to_owned(),
        task: task.to_owned(),
        pid,
        uid,
    })
}

fn kb(text: &str, key: &'static str, record: &str) -> Result<u64, KmsgError> {
    let start = text.find(key).ok_or_else(|| malformed(key, record))? + key.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().map_err(|_| malformed(key, record))
}

fn parse_killed(reason: &str, text: &str) -> Result<KilledProcess, KmsgError> {
    let (pid, rest) = text
        .split_once(" (")
        .ok_or_else(|| malformed("pid", text))?;
    let pid = pid.trim().parse().map_err(|_| malformed("pid", text))?;
    let (comm, stats) = rest
        .rsplit_once(") total-vm:")
        .ok_or_else(|| malformed("comm", text))?;
    let stats = format!("total-vm:{stats}");
    let adj_text = stats
        .rsplit_once("oom_score_adj:")
        .map(|(_, v)| v.trim())
        .ok_or_else(|| malformed("oom_score_adj", text))?;
    Ok(KilledProcess {
        reason: reason.to_owned(),
        pid,
        comm: comm.to_owned(),
        total_vm_kb: kb(&stats, "total-vm:", text)?,
        anon_rss_kb: kb(&stats, "anon-rss:", text)?,
        file_rss_kb: kb(&stats, "file-rss:", text)?,
        shmem_rss_kb: kb(&stats, "shmem-rss:", text)?,
        uid: u32::try_from(kb(&stats, "UID:", text)?).map_err(|_| malformed("UID", text))?,
        oom_score_adj: adj_text
            .parse()
            .map_err(|_| malformed("oom_score_adj", text))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_memcg_summary_from_the_6_18_fixture() {
        let line = "6,733,1227515309,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/ceotest,task_memcg=/ceotest,task=python3,pid=28225,uid=0";
        let rec = parse_kmsg_record(line).unwrap();
        assert_eq!((rec.priority, rec.seq, rec.usec), (6, 733, 1_227_515_309));
        let Some(OomRecord::Summary(s)) = parse_oom_message(&rec.message).unwrap() else {
            panic!("not a summary")
        };
        assert_eq!(s.constraint, "CONSTRAINT_MEMCG");
        assert_eq!(s.oom_memcg.as_deref(), Some("/ceotest"));
        assert_eq!(s.task_memcg, "/ceotest");
        assert_eq!(
            (s.task.as_str(), s.pid, s.uid, s.global_oom),
            ("python3", 28225, 0, false)
        );
    }

    #[test]
    fn parses_global_summary_with_commas_in_names() {
        let msg = "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0-1,3,global_oom,task_memcg=/a,b,task=we,ird,pid=89,uid=1000";
        let Some(OomRecord::Summary(s)) = parse_oom_message(msg).unwrap() else {
            panic!()
        };
        assert!(s.global_oom);
        assert_eq!(s.oom_memcg, None);
        assert_eq!(s.mems_allowed, "0-1,3");
        assert_eq!(
            (s.task_memcg.as_str(), s.task.as_str(), s.pid, s.uid),
            ("/a,b", "we,ird", 89, 1000)
        );
    }

    #[test]
    fn parses_killed_process_lines() {
        let msg = "Memory cgroup out of memory: Killed process 28225 (py (x) 3) total-vm:75160kB, anon-rss:65152kB, file-rss:4796kB, shmem-rss:0kB, UID:0 pgtables:188kB oom_score_adj:-998";
        let Some(OomRecord::Killed(k)) = parse_oom_message(msg).unwrap() else {
            panic!()
        };
        assert!(k.is_memcg());
        assert_eq!(
            (
                k.pid,
                k.comm.as_str(),
                k.anon_rss_kb,
                k.file_rss_kb,
                k.shmem_rss_kb
            ),
            (28225, "py (x) 3", 65152, 4796, 0)
        );
        assert_eq!((k.total_vm_kb, k.uid, k.oom_score_adj), (75160, 0, -998));
        let msg = "Out of memory: Killed process 89 (hog) total-vm:449188kB, anon-rss:447156kB, file-rss:4kB, shmem-rss:648kB, UID:0 pgtables:916kB oom_score_adj:0";
        let Some(OomRecord::Killed(k)) = parse_oom_message(msg).unwrap() else {
            panic!()
        };
        assert!(!k.is_memcg());
        assert_eq!(k.shmem_rss_kb, 648);
    }

    #[test]
    fn other_messages_are_not_records_and_broken_ones_are_errors() {
        assert_eq!(
            parse_oom_message("hog invoked oom-killer: gfp_mask=0x140dca").unwrap(),
            None
        );
        let err = parse_oom_message("oom-kill:constraint=CONSTRAINT_NONE,pid=3,uid=0").unwrap_err();
        assert!(err.to_string().contains("task"), "{err}");
        assert!(parse_kmsg_record("no header").is_err());
        let rec = parse_kmsg_record("4,1,2,-;msg\n SUBSYSTEM=x\n").unwrap();
        assert_eq!(rec.message, "msg");
    }
}
