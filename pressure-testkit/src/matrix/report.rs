//! Reading the guest's serial console: the `@@KM` marker lines the init script prints.

use std::collections::BTreeMap;

/// The marker every result line of the guest starts with.
pub const MARKER: &str = "@@KM ";

/// What one scenario reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScenarioLog {
    /// A `begin` marker was seen.
    pub began: bool,
    /// The `end` marker's `rc=` (the exit status of the program under test), once seen.
    pub rc: Option<i32>,
    /// `info` lines, each split into `key=value` pairs (split at whitespace, then at the first `=`).
    pub info: Vec<BTreeMap<String, String>>,
    /// `info` lines as printed.
    pub info_raw: Vec<String>,
    /// The program's stdout lines.
    pub out: Vec<String>,
    /// The last lines of its stderr.
    pub err: Vec<String>,
}

impl ScenarioLog {
    /// Whether the `end` marker was seen.
    pub fn ended(&self) -> bool {
        self.rc.is_some()
    }

    /// The first value of `key` among the `info` lines without a `case=`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.info
            .iter()
            .filter(|m| !m.contains_key("case"))
            .find_map(|m| m.get(key))
            .map(String::as_str)
    }

    /// The first value of `key` among the `info` lines of `case=<case>`.
    pub fn case_get(&self, case: &str, key: &str) -> Option<&str> {
        self.info
            .iter()
            .filter(|m| m.get("case").map(String::as_str) == Some(case))
            .find_map(|m| m.get(key))
            .map(String::as_str)
    }
}

/// Everything the guest printed with the marker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestReport {
    /// The `boot` line's `key=value` pairs (`kernel`, `psi`, `btf`, `controllers`, `mem_kib`).
    pub boot: BTreeMap<String, String>,
    /// Per scenario name.
    pub scenarios: BTreeMap<String, ScenarioLog>,
    /// The kernel's `oom-kill:` records at the end of the run.
    pub kmsg: Vec<String>,
    /// The `done` marker was seen: the init script ran to its end.
    pub done: bool,
}

fn pairs(text: &str) -> BTreeMap<String, String> {
    text.split_whitespace()
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl GuestReport {
    /// Parses a serial console transcript. Lines without the marker (kernel messages, busybox noise)
    /// are ignored; a marker in the middle of a line (after interleaved kernel output) still counts.
    pub fn parse(console: &str) -> GuestReport {
        let mut r = GuestReport::default();
        for line in console.lines() {
            let line = line.trim_end_matches('\r');
            let Some(at) = line.find(MARKER) else {
                continue;
            };
            let rest = &line[at + MARKER.len()..];
            let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            match kind {
                "boot" => r.boot.extend(pairs(rest)),
                "done" => r.done = true,
                "kmsg" => {
                    let (_, text) = rest.split_once(' ').unwrap_or(("", rest));
                    r.kmsg.push(text.to_string());
                }
                "begin" | "end" | "info" | "out" | "err" => {
                    let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                    let s = r.scenarios.entry(name.to_string()).or_default();
                    match kind {
                        "begin" => s.began = true,
                        "end" => {
                            s.rc = Some(
                                pairs(text)
                                    .get("rc")
                                    .and_then(|v| v.parse().ok())
                                    .unwrap_or(-1),
                            )
                        }
                        "info" => {
                            s.info.push(pairs(text));
                            s.info_raw.push(text.to_string());
                        }
                        "out" => s.out.push(text.to_string()),
                        _ => s.err.push(text.to_string()),
                    }
                }
                _ => {}
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_collected_per_scenario_and_noise_is_ignored() {
        let console = "\
[    0.000000] Linux version 6.1.0-56-cloud-amd64
@@KM boot kernel=6.1.0-56-cloud-amd64 psi=yes btf=yes controllers=cpu,memory,pids mem_kib=492000\r
@@KM begin pressured
@@KM info pressured hog_rc=137
[   12.3] Memory cgroup out of memory: Killed process 93 (hog)@@KM info pressured memory.events=low:0,oom:1,oom_kill:1
@@KM out pressured {\"event_type\":\"memory_pressure\",\"severity\":\"warn\"}
@@KM err pressured 2026-11-24T00:00:00Z INFO watching 1 container
@@KM end pressured rc=0
@@KM begin tracer-bpf
@@KM info tracer-bpf case=container hog_rc=137 hog_last=t=1.5 kib=30720
@@KM info tracer-bpf case=container kills=1
@@KM kmsg main oom-kill:constraint=CONSTRAINT_NONE,global_oom,task=hog,pid=120,uid=0
@@KM done
";
        let r = GuestReport::parse(console);
        assert!(r.done);
        assert_eq!(r.boot["kernel"], "6.1.0-56-cloud-amd64");
        assert_eq!(r.boot["mem_kib"], "492000");
        let p = &r.scenarios["pressured"];
        assert!(p.began && p.ended());
        assert_eq!(p.rc, Some(0));
        assert_eq!(p.get("hog_rc"), Some("137"));
        assert_eq!(p.get("memory.events"), Some("low:0,oom:1,oom_kill:1"));
        assert_eq!(
            p.out,
            ["{\"event_type\":\"memory_pressure\",\"severity\":\"warn\"}"]
        );
        assert_eq!(p.err.len(), 1);
        let t = &r.scenarios["tracer-bpf"];
        assert!(t.began && !t.ended());
        assert_eq!(t.case_get("container", "hog_rc"), Some("137"));
        assert_eq!(t.case_get("container", "kills"), Some("1"));
        assert_eq!(t.case_get("pod", "kills"), None);
        assert_eq!(t.get("hog_rc"), None);
        assert_eq!(r.kmsg.len(), 1);
    }

    #[test]
    fn a_silent_guest_reports_nothing() {
        let r = GuestReport::parse("Kernel panic - not syncing: VFS: Unable to mount root fs\n");
        assert_eq!(r, GuestReport::default());
    }
}
