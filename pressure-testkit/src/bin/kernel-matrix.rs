//! `kernel-matrix`: runs `pressured` and `oom-tracer` on Debian's 6.1 and 6.12 cloud kernels under
//! qemu (TCG) with cgroup v2, and prints kernel × scenario → PASS/FAIL with the key figures.
//!
//! `cargo run --release -p pressure-testkit --bin kernel-matrix`. Exits 1 when any cell fails (a missing
//! binary, a guest that does not boot and an unmet expectation all fail with their reason), 2 when the
//! harness itself cannot run (qemu, busybox or gcc missing). Console logs stay in the work directory.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use pressure_testkit::{
    ChartSecurity, GuestPlan, GuestPrograms, GuestReport, Kernel, MatrixRow, PodIds, QemuSpec,
    Scenario, Verdict, build_hog, build_initramfs, fetch_kernel, judge_pressured, judge_sidecar,
    judge_tracer, render_table, run_qemu,
};

/// Runs pressured and oom-tracer on Debian cloud kernels under qemu, cgroup v2.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Kernel series (Debian bookworm `linux-image-<series>.*-cloud-amd64`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "6.1,6.12")]
    kernels: Vec<String>,
    /// Scenarios: pressured, tracer-bpf, tracer-kmsg, pressured-sidecar; comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "pressured,tracer-bpf,tracer-kmsg,pressured-sidecar"
    )]
    scenarios: Vec<String>,
    /// Work and cache directory (default `<workspace>/target/kernel-matrix`).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Use the given (or already built) binaries; don't run `cargo build --release`.
    #[arg(long)]
    no_build: bool,
    /// The `pressured` binary (default `<target>/release/pressured`).
    #[arg(long)]
    pressured: Option<PathBuf>,
    /// The `oom-tracer` binary (default `<target>/release/oom-tracer`).
    #[arg(long)]
    oom_tracer: Option<PathBuf>,
    /// The flags that put oom-tracer in kmsg-only mode, space-separated [detected from its --help].
    #[arg(long, allow_hyphen_values = true)]
    kmsg_flags: Option<String>,
    /// Per-kernel limit on the guest's run, in seconds.
    #[arg(long, default_value_t = 240)]
    timeout_secs: u64,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    memory_mib: u32,
    /// Boot the kernels one after the other instead of in parallel.
    #[arg(long)]
    sequential: bool,
}

/// The workspace root: this crate's parent directory (from `cargo run`'s environment, else from build time).
fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .map_or_else(|| manifest.clone(), Path::to_path_buf)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Finds a program on PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// A binary under test, ready or with the reason it is not.
struct Program {
    path: Result<PathBuf, String>,
    help: String,
}

/// Builds (unless told not to) and probes one binary: it must exist and its `--help` must show `flag`.
fn prepare(package: &str, bin: &str, given: Option<PathBuf>, build: bool, flag: &str) -> Program {
    let path = given.unwrap_or_else(|| target_dir().join("release").join(bin));
    if build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("kernel-matrix: cargo build --release -p {package} --bin {bin}");
        match Command::new(cargo)
            .args(["build", "--release", "-p", package, "--bin", bin])
            .current_dir(workspace_root())
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                let tail: Vec<&str> = err.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Program {
                    path: Err(format!(
                        "cargo build --release -p {package} failed: {}",
                        tail.join(" | ")
                    )),
                    help: String::new(),
                };
            }
            Err(e) => {
                return Program {
                    path: Err(format!("cannot run cargo: {e}")),
                    help: String::new(),
                };
            }
        }
    }
    if !path.is_file() {
        return Program {
            path: Err(format!("{bin} missing: {}", path.display())),
            help: String::new(),
        };
    }
    let help = Command::new(&path)
        .arg("--help")
        .output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default();
    if !help.contains(flag) {
        return Program {
            path: Err(format!(
                "{} --help does not mention {flag}: not implemented yet? (help: {:.80})",
                path.display(),
                help.trim()
            )),
            help,
        };
    }
    Program {
        path: Ok(path),
        help,
    }
}

/// The flags that force oom-tracer's kmsg-only mode, from its `--help`.
fn detect_kmsg_flags(help: &str) -> Option<Vec<String>> {
    for flag in ["--kmsg-only", "--force-kmsg", "--no-bpf"] {
        if help.contains(flag) {
            return Some(vec![flag.to_string()]);
        }
    }
    for flag in ["--source", "--mode", "--backend"] {
        if help.lines().any(|l| l.contains(flag) && l.contains("kmsg")) {
            return Some(vec![flag.to_string(), "kmsg".to_string()]);
        }
    }
    None
}

/// A copy of `bin` without debug sections in `work` (17 MiB less to load into the guest), or `bin` itself
/// when `strip` (binutils) is not there.
fn stripped(bin: PathBuf, work: &Path) -> PathBuf {
    let Some(name) = bin.file_name() else {
        return bin;
    };
    let out = work.join(name);
    match Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(&bin)
        .status()
    {
        Ok(st) if st.success() => out,
        _ => bin,
    }
}

fn random_ids() -> anyhow::Result<PodIds> {
    let mut b = [0u8; 48];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(PodIds::from_bytes(&b))
}

/// The verdicts of one kernel's run.
fn judge(
    kernel: &str,
    plan: &GuestPlan,
    run: &anyhow::Result<pressure_testkit::QemuRun>,
    log: &Path,
) -> Vec<(Scenario, Verdict)> {
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            return plan
                .scenarios
                .iter()
                .map(|s| (*s, Verdict::fail(format!("{kernel}: qemu: {e:#}"))))
                .collect();
        }
    };
    let report = GuestReport::parse(&run.console);
    let mut problem = None;
    if report.boot.is_empty() {
        let tail: Vec<&str> = run.console.lines().rev().take(6).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        problem = Some(format!(
            "the guest never reached /init (console {}): {}",
            log.display(),
            tail.join(" | ")
        ));
    } else if run.timed_out {
        problem = Some(format!(
            "qemu killed after {:.0} s (console {})",
            run.elapsed.as_secs_f64(),
            log.display()
        ));
    } else if !report.done {
        problem = Some(format!(
            "the guest stopped before its done marker (kernel panic? console {})",
            log.display()
        ));
    }
    plan.scenarios
        .iter()
        .map(|s| {
            let log = report.scenarios.get(s.name());
            let mut v = match s {
                Scenario::Pressured => judge_pressured(log, &plan.pressured, plan.pressured_limit),
                Scenario::PressuredSidecar => judge_sidecar(
                    log,
                    &plan.sidecar,
                    plan.pressured_limit,
                    &ChartSecurity::pressured(),
                ),
                other => {
                    let source = if *other == Scenario::TracerBpf {
                        "bpf"
                    } else {
                        "kmsg"
                    };
                    let pods = plan.tracer_pods(*other).expect("tracer scenario");
                    judge_tracer(log, other.name(), pods, source)
                }
            };
            if let Some(p) = &problem
                && (!v.pass || log.is_none_or(|l| !l.ended()))
            {
                v.pass = false;
                v.reasons.insert(0, p.clone());
            }
            (*s, v)
        })
        .collect()
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kernel-matrix: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let args = Args::parse();
    let started = Instant::now();
    let mut wanted = Vec::new();
    for name in &args.scenarios {
        match Scenario::from_name(name) {
            Some(s) => wanted.push(s),
            None => {
                bail!(
                    "unknown scenario {name:?}: expected pressured, tracer-bpf, tracer-kmsg or \
                     pressured-sidecar"
                )
            }
        }
    }
    let qemu = which("qemu-system-x86_64")
        .context("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")?;
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .map(PathBuf::from)
        .into_iter()
        .find(|p| p.is_file())
        .context("busybox not found (apt-get install busybox-static)")?;
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| target_dir().join("kernel-matrix"));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    // The binaries under test; a scenario whose binary is not ready fails with the reason.
    let build = !args.no_build;
    let mut not_ready: BTreeMap<Scenario, String> = BTreeMap::new();
    let mut pressured = None;
    let pressured_scenarios = [Scenario::Pressured, Scenario::PressuredSidecar];
    if wanted.iter().any(|s| pressured_scenarios.contains(s)) {
        let p = prepare(
            "pressured-cli",
            "pressured",
            args.pressured.clone(),
            build,
            "--config",
        );
        match p.path {
            Ok(path) => pressured = Some(path),
            Err(e) => {
                for s in pressured_scenarios {
                    not_ready.insert(s, e.clone());
                }
            }
        }
    }
    // The sidecar scenario's sandbox: util-linux unshare (with --cgroup) and setpriv.
    let mut sandbox = None;
    if wanted.contains(&Scenario::PressuredSidecar) {
        match (which("unshare"), which("setpriv")) {
            (Some(unshare), Some(setpriv)) => sandbox = Some((unshare, setpriv)),
            _ => {
                not_ready.insert(
                    Scenario::PressuredSidecar,
                    "unshare or setpriv not found (Debian util-linux)".into(),
                );
            }
        }
    }
    let mut oom_tracer = None;
    let mut kmsg_flags = Vec::new();
    if wanted
        .iter()
        .any(|s| matches!(s, Scenario::TracerBpf | Scenario::TracerKmsg))
    {
        let p = prepare(
            "oom-tracer-cli",
            "oom-tracer",
            args.oom_tracer.clone(),
            build,
            "--no-kubernetes",
        );
        match p.path {
            Ok(path) => {
                oom_tracer = Some(path);
                match args
                    .kmsg_flags
                    .as_deref()
                    .map(|f| f.split_whitespace().map(String::from).collect())
                    .or_else(|| detect_kmsg_flags(&p.help))
                {
                    Some(f) => kmsg_flags = f,
                    None => {
                        not_ready.insert(
                            Scenario::TracerKmsg,
                            "oom-tracer --help shows no kmsg-only flag (tried --kmsg-only, --force-kmsg, \
                             --no-bpf, --source kmsg); pass --kmsg-flags"
                                .into(),
                        );
                    }
                }
            }
            Err(e) => {
                for s in [Scenario::TracerBpf, Scenario::TracerKmsg] {
                    not_ready.insert(s, e.clone());
                }
            }
        }
    }
    let runnable: Vec<Scenario> = wanted
        .iter()
        .copied()
        .filter(|s| !not_ready.contains_key(s))
        .collect();

    // Kernels.
    let mut kernels: Vec<Kernel> = Vec::new();
    let mut rows = Vec::new();
    for series in &args.kernels {
        eprintln!("kernel-matrix: kernel {series}: looking up and caching");
        match fetch_kernel(&work.join("kernels"), series) {
            Ok(k) => kernels.push(k),
            Err(e) => {
                for s in &wanted {
                    rows.push(MatrixRow {
                        kernel: series.clone(),
                        scenario: s.name().into(),
                        verdict: Verdict::fail(e.to_string()),
                    });
                }
            }
        }
    }

    // One initramfs for all kernels.
    let hog = work.join("hog");
    build_hog(&hog)?;
    let plan = GuestPlan {
        scenarios: runnable.clone(),
        pressured: random_ids()?,
        tracer_bpf: [random_ids()?, random_ids()?, random_ids()?],
        tracer_kmsg: [random_ids()?, random_ids()?, random_ids()?],
        sidecar: random_ids()?,
        sidecar_own_container: random_ids()?.container_id,
        sidecar_setpriv: ChartSecurity::pressured().setpriv_args(),
        pressured_limit: 64 << 20,
        pressured_poll_ms: 100,
        pressured_growth: (1024, 100),
        tracer_limit: 32 << 20,
        tracer_bpf_flags: Vec::new(),
        tracer_kmsg_flags: kmsg_flags,
    };
    let fs = build_initramfs(
        &plan,
        &GuestPrograms {
            busybox,
            hog,
            pressured: pressured.map(|p| stripped(p, &work)),
            oom_tracer: oom_tracer.map(|p| stripped(p, &work)),
            sandbox: sandbox.filter(|_| runnable.contains(&Scenario::PressuredSidecar)),
        },
    )?;
    let initrd = work.join("initramfs.cpio");
    std::fs::write(&initrd, fs.to_newc())
        .with_context(|| format!("writing {}", initrd.display()))?;
    eprintln!(
        "kernel-matrix: initramfs {} ({:.1} MiB); scenarios: {}",
        initrd.display(),
        fs.payload_bytes() as f64 / (1 << 20) as f64,
        runnable
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(" ")
    );

    // Boot.
    let specs: Vec<(Kernel, QemuSpec)> = kernels
        .into_iter()
        .map(|k| {
            let log = work.join(format!("console-{}.log", k.package));
            let spec = QemuSpec {
                qemu: qemu.clone(),
                vmlinuz: k.vmlinuz.clone(),
                initrd: initrd.clone(),
                memory_mib: args.memory_mib,
                append: QemuSpec::APPEND.into(),
                timeout: Duration::from_secs(args.timeout_secs),
                log,
            };
            (k, spec)
        })
        .collect();
    let boot = |spec: &QemuSpec| run_qemu(spec).map_err(anyhow::Error::from);
    let runs: Vec<anyhow::Result<pressure_testkit::QemuRun>> = if args.sequential {
        specs.iter().map(|(_, s)| boot(s)).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = specs
                .iter()
                .map(|(k, s)| {
                    eprintln!("kernel-matrix: booting {}", k.package);
                    scope.spawn(move || boot(s))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("qemu thread"))
                .collect()
        })
    };

    let mut timings = Vec::new();
    for ((k, spec), run) in specs.iter().zip(&runs) {
        let report = run.as_ref().ok().map(|r| GuestReport::parse(&r.console));
        let name = report
            .as_ref()
            .and_then(|r| r.boot.get("kernel").cloned())
            .unwrap_or_else(|| k.package.trim_start_matches("linux-image-").to_string());
        if let Ok(r) = run {
            timings.push(format!(
                "{name}: {:.1} s{}",
                r.elapsed.as_secs_f64(),
                if r.timed_out { " (timed out)" } else { "" }
            ));
        }
        let verdicts = judge(&name, &plan, run, &spec.log);
        for s in &wanted {
            let verdict = match not_ready.get(s) {
                Some(reason) => Verdict::fail(reason.clone()),
                None => verdicts
                    .iter()
                    .find(|(vs, _)| vs == s)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| Verdict::fail("not run")),
            };
            rows.push(MatrixRow {
                kernel: name.clone(),
                scenario: s.name().into(),
                verdict,
            });
        }
    }
    print!("{}", render_table(&rows));
    println!(
        "\nguest run time: {}; whole matrix {:.1} s; console logs in {}",
        timings.join(", "),
        started.elapsed().as_secs_f64(),
        work.display()
    );
    Ok(!rows.is_empty() && rows.iter().all(|r| r.verdict.pass))
}
