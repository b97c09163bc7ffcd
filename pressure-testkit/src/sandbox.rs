//! The process sandbox the Helm charts give each binary, for tests that run it the same way.
//!
//! The one source of truth is the charts' default values (`podSecurityContext` and
//! `securityContext` in `charts/<chart>/values.yaml`, compiled in): a test builds its `setpriv`
//! command line from them, so it cannot drift from what the chart deploys, and
//! `scripts/check_charts.py` checks that the rendered charts (and `examples/sidecar.yaml`) carry
//! exactly these contexts.

use serde_yaml::Value;

const PRESSURED_VALUES: &str = include_str!("../../charts/pressured/values.yaml");
const OOM_TRACER_VALUES: &str = include_str!("../../charts/oom-tracer/values.yaml");

/// What a chart's security contexts make of a container's process (the parts a process sandbox
/// can reproduce: user, groups, capabilities, `no_new_privs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSecurity {
    /// `runAsUser` (container over pod; 0 when unset, the image's root).
    pub uid: u32,
    /// `runAsGroup` (container over pod; 0 when unset).
    pub gid: u32,
    /// Supplementary groups: the pod's `fsGroup`, which the kubelet adds.
    pub groups: Vec<u32>,
    /// Capabilities `add`ed after `drop: [ALL]`, lower case without `CAP_` (`bpf`).
    pub capabilities: Vec<String>,
    /// `allowPrivilegeEscalation: false`: the process runs with `no_new_privs`.
    pub no_new_privs: bool,
}

impl ChartSecurity {
    /// The `pressured` chart's container.
    ///
    /// # Panics
    /// When the chart's values lack a security context this module understands (a test bug).
    #[must_use]
    pub fn pressured() -> Self {
        Self::from_values("pressured", PRESSURED_VALUES)
    }

    /// The `oom-tracer` chart's container.
    ///
    /// # Panics
    /// As for [`pressured`](Self::pressured).
    #[must_use]
    pub fn oom_tracer() -> Self {
        Self::from_values("oom-tracer", OOM_TRACER_VALUES)
    }

    fn from_values(chart: &str, text: &str) -> Self {
        let values: Value = serde_yaml::from_str(text)
            .unwrap_or_else(|e| panic!("charts/{chart}/values.yaml: {e}"));
        let pod = &values["podSecurityContext"];
        let container = &values["securityContext"];
        let id = |key: &str| {
            container[key]
                .as_u64()
                .or_else(|| pod[key].as_u64())
                .map_or(0, |v| u32::try_from(v).expect("an ID"))
        };
        let caps = &container["capabilities"];
        let drops_all = caps["drop"]
            .as_sequence()
            .is_some_and(|d| d.iter().any(|c| c.as_str() == Some("ALL")));
        assert!(
            drops_all,
            "charts/{chart}/values.yaml: securityContext.capabilities.drop must hold ALL"
        );
        let capabilities = caps["add"]
            .as_sequence()
            .map(|add| {
                add.iter()
                    .map(|c| {
                        c.as_str()
                            .expect("a capability name")
                            .trim_start_matches("CAP_")
                            .to_ascii_lowercase()
                    })
                    .collect()
            })
            .unwrap_or_default();
        ChartSecurity {
            uid: id("runAsUser"),
            gid: id("runAsGroup"),
            groups: pod["fsGroup"]
                .as_u64()
                .map(|g| vec![u32::try_from(g).expect("a group ID")])
                .unwrap_or_default(),
            capabilities,
            no_new_privs: container["allowPrivilegeEscalation"].as_bool() == Some(false),
        }
    }

    /// The `setpriv` arguments (before `--` and the program) that give a root process this
    /// sandbox: user, groups, the bounding and inheritable sets (root keeps exactly the added
    /// capabilities, as a container runtime leaves them), `no_new_privs`.
    #[must_use]
    pub fn setpriv_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
        ];
        if self.groups.is_empty() {
            args.push("--clear-groups".into());
        } else {
            let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            args.push(format!("--groups={}", groups.join(",")));
        }
        let mut bounding = String::from("-all");
        for cap in &self.capabilities {
            bounding.push_str(&format!(",+{cap}"));
        }
        args.push("--inh-caps=-all".into());
        args.push(format!("--bounding-set={bounding}"));
        if self.no_new_privs {
            args.push("--no-new-privs".into());
        }
        args
    }

    /// The capability mask the process ends up with (`CapEff`/`CapPrm`/`CapBnd` in
    /// `/proc/<pid>/status`): the added capabilities as uid 0, nothing otherwise.
    ///
    /// # Panics
    /// For a capability this module does not know the number of.
    #[must_use]
    pub fn effective_mask(&self) -> u64 {
        if self.uid != 0 {
            return 0;
        }
        self.bounding_mask()
    }

    /// The bounding set's mask: the added capabilities.
    ///
    /// # Panics
    /// For a capability this module does not know the number of.
    #[must_use]
    pub fn bounding_mask(&self) -> u64 {
        self.capabilities
            .iter()
            .map(|cap| 1u64 << capability_number(cap))
            .fold(0, |a, b| a | b)
    }
}

/// The number of a capability (`linux/capability.h`), for those the charts may add.
fn capability_number(name: &str) -> u32 {
    match name {
        "dac_override" => 1,
        "dac_read_search" => 2,
        "kill" => 5,
        "net_admin" => 12,
        "sys_ptrace" => 19,
        "sys_admin" => 21,
        "sys_resource" => 24,
        "syslog" => 34,
        "perfmon" => 38,
        "bpf" => 39,
        other => panic!("capability {other} unknown to pressure-testkit::sandbox"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressured_runs_as_65532_without_capabilities() {
        let s = ChartSecurity::pressured();
        assert_eq!((s.uid, s.gid), (65532, 65532));
        assert!(s.capabilities.is_empty());
        assert!(s.no_new_privs);
        assert_eq!(s.effective_mask(), 0);
        let args = s.setpriv_args();
        assert!(args.contains(&"--reuid=65532".to_owned()), "{args:?}");
        assert!(args.contains(&"--bounding-set=-all".to_owned()), "{args:?}");
    }

    #[test]
    fn oom_tracer_is_root_with_bpf_perfmon_syslog_only() {
        let s = ChartSecurity::oom_tracer();
        assert_eq!(s.uid, 0);
        assert_eq!(s.capabilities, ["bpf", "perfmon", "syslog"]);
        assert_eq!(s.effective_mask(), (1 << 39) | (1 << 38) | (1 << 34));
        assert!(
            s.setpriv_args()
                .contains(&"--bounding-set=-all,+bpf,+perfmon,+syslog".to_owned())
        );
    }
}
