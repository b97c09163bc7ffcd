//! Flags of the original oom-tracer (Go `flag` spellings) and their validated form.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{ArgAction, Parser, ValueEnum};
use pressure_ebpf::AnnotateKills;
use pressure_kubelet::PendingOptions;

/// Catches every kernel OOM kill with eBPF (or the kernel log), maps the victim to its pod and marks it.
#[derive(Debug, Parser)]
#[command(name = "oom-tracer", version, disable_version_flag = true)]
pub(crate) struct Args {
    /// Path of the kubeconfig file; empty uses the in-cluster service account. Needs a build with
    /// `--features kubeconfig` (release builds and images read no kubeconfig).
    #[arg(long = "kube_config", alias = "kube-config", value_name = "PATH")]
    pub(crate) kube_config: Option<PathBuf>,
    /// Queries per second to the API server.
    #[arg(
        long = "kube_client_qps",
        alias = "kube-client-qps",
        default_value_t = 50.0
    )]
    pub(crate) kube_client_qps: f64,
    /// Extra queries allowed in a burst above the QPS.
    #[arg(
        long = "kube_client_burst",
        alias = "kube-client-burst",
        default_value_t = 100
    )]
    pub(crate) kube_client_burst: u32,
    /// This node's name [default: env K8S_NODENAME, else NODE_NAME]; required with Kubernetes.
    #[arg(long = "node_name", alias = "node-name", value_name = "NAME")]
    pub(crate) node_name: Option<String>,
    /// Address of /metrics, /healthz and /readyz (`:8080` = all interfaces); empty disables.
    #[arg(
        long = "metrics_bind_address",
        alias = "metrics-bind-address",
        default_value = ":8080",
        value_name = "ADDR"
    )]
    pub(crate) metrics_bind_address: String,
    /// Annotation put on victims' pods, `key=value` (or `key=`); empty (or `""`) observes only.
    #[arg(
        long = "victim_annotation",
        alias = "victim-annotation",
        default_value = "",
        value_name = "KEY=VALUE"
    )]
    pub(crate) victim_annotation: String,
    /// The original's inverted switch: false = annotate only victims of global OOMs, true = of every OOM.
    #[arg(
        long = "ignore_global_oom",
        alias = "ignore-global-oom",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL",
        conflicts_with = "annotate_kills"
    )]
    pub(crate) ignore_global_oom: Option<bool>,
    /// Which kills' victims to annotate (plain spelling of --ignore_global_oom).
    #[arg(
        long = "annotate-kills",
        alias = "annotate_kills",
        value_enum,
        value_name = "WHICH"
    )]
    pub(crate) annotate_kills: Option<AnnotateArg>,
    /// Observe only, without Kubernetes: print one JSON line per kill on stdout.
    #[arg(long = "no-kubernetes", alias = "no_kubernetes")]
    pub(crate) no_kubernetes: bool,
    /// Use the kernel log alone, even where BPF could load.
    #[arg(long = "kmsg-only", alias = "kmsg_only")]
    pub(crate) kmsg_only: bool,
    /// Report kills already in the kernel log at start (default: only new ones).
    #[arg(long = "replay-kmsg", alias = "replay_kmsg")]
    pub(crate) replay_kmsg: bool,
    /// Kernel log device, or a captured log file to replay.
    #[arg(
        long = "kmsg-path",
        alias = "kmsg_path",
        default_value = "/dev/kmsg",
        value_name = "PATH"
    )]
    pub(crate) kmsg_path: PathBuf,
    /// Maximum age of a kill whose mark (annotation, Event) could not be made yet: retried with
    /// backoff until made, the pod is gone, or this old (1s to 7d; e.g. `90m`, `3600s`).
    #[arg(
        long = "pending-marks-max-age",
        alias = "pending_marks_max_age",
        default_value = "1h",
        value_name = "DURATION"
    )]
    pub(crate) pending_marks_max_age: String,
    /// Most kills kept waiting for their mark; past it the oldest is dropped (logged, counted).
    #[arg(
        long = "pending-marks-capacity",
        alias = "pending_marks_capacity",
        default_value_t = 1024,
        value_name = "N"
    )]
    pub(crate) pending_marks_capacity: usize,
    /// File keeping the pending marks across a restart (JSON, replaced atomically; unreadable =
    /// logged and ignored); empty keeps them in memory only.
    #[arg(
        long = "state-file",
        alias = "state_file",
        default_value = DEFAULT_STATE_FILE,
        value_name = "PATH"
    )]
    pub(crate) state_file: String,
    /// Print the version and exit.
    #[arg(long = "version", action = ArgAction::Version)]
    version: (),
}

/// Where the pending marks are kept by default.
pub(crate) const DEFAULT_STATE_FILE: &str = "/var/lib/oom-tracer/pending-marks.json";

/// `--annotate-kills` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AnnotateArg {
    /// Only victims of global OOMs.
    Global,
    /// Victims of every OOM.
    All,
}

/// Accepts the Go `flag` package's single-dash long flags (`-node_name x`) as well.
pub(crate) fn normalise_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let long_single_dash = i > 0
                && a.len() > 2
                && a.starts_with('-')
                && !a.starts_with("--")
                && a[1..].starts_with(|c: char| c.is_ascii_alphabetic());
            if long_single_dash { format!("-{a}") } else { a }
        })
        .collect()
}

/// A victim annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Annotation {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) kube_config: Option<PathBuf>,
    pub(crate) kube_client_qps: f64,
    pub(crate) kube_client_burst: u32,
    pub(crate) node_name: Option<String>,
    pub(crate) metrics_addr: Option<SocketAddr>,
    pub(crate) annotation: Option<Annotation>,
    pub(crate) annotate: AnnotateKills,
    pub(crate) kubernetes: bool,
    pub(crate) kmsg_only: bool,
    pub(crate) replay_kmsg: bool,
    pub(crate) kmsg_path: PathBuf,
    /// Bounds of the pending marks.
    pub(crate) pending: PendingOptions,
    /// `--state-file`; `None` when empty.
    pub(crate) state_file: Option<PathBuf>,
}

/// `key=value`; empty, blank or a literal `""` mean none (the original crashes on `""`).
pub(crate) fn parse_annotation(raw: &str) -> anyhow::Result<Option<Annotation>> {
    let raw = raw.trim();
    if raw.is_empty() || raw == "\"\"" || raw == "''" {
        return Ok(None);
    }
    let Some((key, value)) = raw.split_once('=') else {
        bail!("--victim_annotation {raw:?}: expected key=value");
    };
    let key = key.trim();
    if key.is_empty() {
        bail!("--victim_annotation {raw:?}: the key is empty");
    }
    Ok(Some(Annotation {
        key: key.to_owned(),
        value: value.trim().to_owned(),
    }))
}

impl Config {
    /// Validates `args`; `env` looks up environment variables (injectable for tests).
    pub(crate) fn from_args(
        args: Args,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let node_name = args
            .node_name
            .filter(|n| !n.is_empty())
            .or_else(|| env("K8S_NODENAME").filter(|n| !n.is_empty()))
            .or_else(|| env("NODE_NAME").filter(|n| !n.is_empty()));
        let kubernetes = !args.no_kubernetes;
        if kubernetes && node_name.is_none() {
            bail!(
                "either --node_name or the K8S_NODENAME (or NODE_NAME) environment variable must be set (or run with --no-kubernetes)"
            );
        }
        if args.kube_client_qps.is_nan() || args.kube_client_qps <= 0.0 {
            bail!(
                "--kube_client_qps must be positive, got {}",
                args.kube_client_qps
            );
        }
        let annotate = match (args.annotate_kills, args.ignore_global_oom) {
            (Some(AnnotateArg::All), _) | (None, Some(true)) => AnnotateKills::All,
            _ => AnnotateKills::Global,
        };
        let annotation = parse_annotation(&args.victim_annotation)?;
        if annotation.is_some() && !kubernetes {
            bail!("--victim_annotation needs Kubernetes: drop --no-kubernetes");
        }
        let max_age =
            humantime::parse_duration(args.pending_marks_max_age.trim()).with_context(|| {
                format!(
                    "--pending-marks-max-age {:?}: expected a duration such as 1h, 90m or 3600s",
                    args.pending_marks_max_age
                )
            })?;
        let pending = PendingOptions {
            max_age,
            capacity: args.pending_marks_capacity,
            ..PendingOptions::default()
        };
        pending.validate().map_err(|e| {
            let flag = match &e {
                pressure_kubelet::KubeletError::Invalid { key, .. } if key == "capacity" => {
                    "--pending-marks-capacity"
                }
                _ => "--pending-marks-max-age",
            };
            anyhow::anyhow!("{flag}: {e}")
        })?;
        Ok(Self {
            kube_config: args.kube_config.filter(|p| !p.as_os_str().is_empty()),
            kube_client_qps: args.kube_client_qps,
            kube_client_burst: args.kube_client_burst,
            node_name,
            metrics_addr: pressure_kubelet::parse_bind_address(&args.metrics_bind_address)
                .context("--metrics_bind_address")?,
            annotation,
            annotate,
            kubernetes,
            kmsg_only: args.kmsg_only,
            replay_kmsg: args.replay_kmsg,
            kmsg_path: args.kmsg_path,
            pending,
            state_file: Some(args.state_file)
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Config> {
        let argv = normalise_args(
            std::iter::once("oom-tracer")
                .chain(args.iter().copied())
                .map(String::from),
        );
        let args = Args::try_parse_from(argv)?;
        Config::from_args(args, |k| (k == "NODE_NAME").then(|| "from-env".to_owned()))
    }

    #[test]
    fn defaults_match_the_original() {
        let c = parse(&[]).unwrap();
        assert_eq!((c.kube_client_qps, c.kube_client_burst), (50.0, 100));
        assert_eq!(c.metrics_addr, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(c.annotation, None);
        assert_eq!(c.annotate, AnnotateKills::Global);
        assert_eq!(c.node_name.as_deref(), Some("from-env"));
        assert!(c.kubernetes && !c.kmsg_only && !c.replay_kmsg);
    }

    #[test]
    fn accepts_go_kebab_and_single_dash_spellings() {
        let c = parse(&[
            "-node_name",
            "n1",
            "--kube-client-qps=5",
            "--kube_client_burst",
            "7",
            "-metrics_bind_address=127.0.0.1:9",
        ])
        .unwrap();
        assert_eq!(c.node_name.as_deref(), Some("n1"));
        assert_eq!((c.kube_client_qps, c.kube_client_burst), (5.0, 7));
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9".parse().unwrap()));
        let c = parse(&[
            "--victim-annotation",
            "oom/victim=true",
            "--kube-config",
            "/k",
        ])
        .unwrap();
        assert_eq!(
            c.annotation,
            Some(Annotation {
                key: "oom/victim".into(),
                value: "true".into()
            })
        );
        assert_eq!(c.kube_config.as_deref(), Some(std::path::Path::new("/k")));
    }

    #[test]
    fn ignore_global_oom_keeps_its_inverted_meaning_and_has_a_plain_alias() {
        assert_eq!(
            parse(&["--ignore_global_oom"]).unwrap().annotate,
            AnnotateKills::All
        );
        assert_eq!(
            parse(&["--ignore_global_oom=true"]).unwrap().annotate,
            AnnotateKills::All
        );
        assert_eq!(
            parse(&["--ignore-global-oom=false"]).unwrap().annotate,
            AnnotateKills::Global
        );
        assert_eq!(
            parse(&["--annotate-kills", "all"]).unwrap().annotate,
            AnnotateKills::All
        );
        assert_eq!(
            parse(&["--annotate-kills=global"]).unwrap().annotate,
            AnnotateKills::Global
        );
        assert!(parse(&["--annotate-kills=all", "--ignore_global_oom"]).is_err());
    }

    #[test]
    fn empty_and_quoted_empty_annotation_observe_only() {
        for raw in ["", "  ", "\"\""] {
            assert_eq!(parse_annotation(raw).unwrap(), None, "{raw:?}");
        }
        assert_eq!(
            parse_annotation("k=").unwrap(),
            Some(Annotation {
                key: "k".into(),
                value: String::new()
            })
        );
        assert!(
            parse_annotation("novalue")
                .unwrap_err()
                .to_string()
                .contains("key=value")
        );
        assert!(parse_annotation("=v").is_err());
    }

    #[test]
    fn metrics_address_forms() {
        assert_eq!(
            parse(&["--metrics_bind_address", ":9"])
                .unwrap()
                .metrics_addr,
            Some("0.0.0.0:9".parse().unwrap())
        );
        assert!(parse(&["--metrics_bind_address", "nope"]).is_err());
        assert_eq!(
            parse(&["--metrics_bind_address", ""]).unwrap().metrics_addr,
            None
        );
    }

    #[test]
    fn issue_16_pending_marks_bounds_are_flags_and_validated() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.pending.max_age, std::time::Duration::from_secs(3600));
        assert_eq!(c.pending.capacity, 1024);
        assert_eq!(
            c.state_file.as_deref(),
            Some(std::path::Path::new(DEFAULT_STATE_FILE))
        );
        let c = parse(&[
            "--pending-marks-max-age",
            "90m",
            "--pending_marks_capacity=5",
            "--state-file=",
        ])
        .unwrap();
        assert_eq!(c.pending.max_age, std::time::Duration::from_secs(5400));
        assert_eq!(c.pending.capacity, 5);
        assert_eq!(c.state_file, None);
        for (args, flag) in [
            (
                &["--pending-marks-max-age", "0s"][..],
                "--pending-marks-max-age",
            ),
            (
                &["--pending-marks-max-age", "30d"][..],
                "--pending-marks-max-age",
            ),
            (
                &["--pending-marks-max-age", "soon"][..],
                "--pending-marks-max-age",
            ),
            (
                &["--pending-marks-capacity", "0"][..],
                "--pending-marks-capacity",
            ),
            (
                &["--pending-marks-capacity", "100000"][..],
                "--pending-marks-capacity",
            ),
        ] {
            let e = format!("{:#}", parse(args).unwrap_err());
            assert!(e.contains(flag), "{args:?}: {e}");
        }
    }

    #[test]
    fn kubernetes_mode_needs_a_node_name() {
        let args = Args::try_parse_from(["oom-tracer"]).unwrap();
        assert!(
            Config::from_args(args, |_| None)
                .unwrap_err()
                .to_string()
                .contains("K8S_NODENAME")
        );
        let args = Args::try_parse_from(["oom-tracer", "--no-kubernetes"]).unwrap();
        let c = Config::from_args(args, |_| None).unwrap();
        assert!(!c.kubernetes && c.node_name.is_none());
        let args = Args::try_parse_from(["oom-tracer"]).unwrap();
        let c = Config::from_args(args, |k| (k == "K8S_NODENAME").then(|| "a".to_owned())).unwrap();
        assert_eq!(c.node_name.as_deref(), Some("a"));
    }
}
