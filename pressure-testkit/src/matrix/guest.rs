//! What goes into the guest: the scenario parameters (`/etc/matrix.env`), the init script, the memory
//! hog, and the binaries under test with the shared libraries `ldd` names for them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::MatrixError;
use super::cpio::Initramfs;

/// The guest's `/init` (busybox sh): mounts, builds the cgroup trees, runs the scenarios, reports.
pub const INIT_SCRIPT: &str = include_str!("../../guest/init.sh");

/// The memory hog's C source, compiled with `gcc -static` on the host.
pub const HOG_SOURCE: &str = include_str!("../../guest/hog.c");

/// A scenario of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Scenario {
    /// `pressured` node mode: warn, critical, predicted_oom before a container's memcg OOM, then oom_killed.
    Pressured,
    /// `oom-tracer --no-kubernetes` (BPF): container-limit, pod-limit and global OOM.
    TracerBpf,
    /// The same in kmsg-only mode.
    TracerKmsg,
    /// `pressured` as a sidecar the way the chart runs it: in the sidecar container's cgroup, with
    /// its own cgroup, PID and mount namespaces, cgroupfs read-only, the chart's user and no
    /// capabilities (`setpriv`), no `POD_UID`: it must find its pod, warn, go critical and report the
    /// kill at once (v2 `memory.events` inotify works unprivileged).
    PressuredSidecar,
}

impl Scenario {
    /// Every scenario, in run order.
    pub const ALL: [Scenario; 4] = [
        Scenario::Pressured,
        Scenario::TracerBpf,
        Scenario::TracerKmsg,
        Scenario::PressuredSidecar,
    ];

    /// The name used on the command line, in the guest markers and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Pressured => "pressured",
            Scenario::TracerBpf => "tracer-bpf",
            Scenario::TracerKmsg => "tracer-kmsg",
            Scenario::PressuredSidecar => "pressured-sidecar",
        }
    }

    /// The scenario of a name.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A pod and container identity as kubelet lays it out with the systemd cgroup driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIds {
    /// Pod UID with dashes (as the API server and our events spell it).
    pub uid: String,
    /// 64 lowercase hex digits.
    pub container_id: String,
}

impl PodIds {
    /// An identity from 48 random bytes (16 for the UID, 32 for the container ID).
    pub fn from_bytes(b: &[u8; 48]) -> PodIds {
        let hex: String = b[..16].iter().map(|x| format!("{x:02x}")).collect();
        let uid = format!(
            "{}-{}-4{}-8{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        );
        let container_id = b[16..].iter().map(|x| format!("{x:02x}")).collect();
        PodIds { uid, container_id }
    }

    /// The UID as the systemd driver writes it in slice names (dashes → underscores).
    pub fn uid_underscored(&self) -> String {
        self.uid.replace('-', "_")
    }

    /// The pod slice, relative to the cgroup root, for a QoS class (`burstable`, `besteffort`).
    pub fn pod_slice(&self, qos: &str) -> String {
        format!(
            "/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{}.slice",
            self.uid_underscored()
        )
    }

    /// The container scope, relative to the cgroup root.
    pub fn container_scope(&self, qos: &str) -> String {
        format!(
            "{}/cri-containerd-{}.scope",
            self.pod_slice(qos),
            self.container_id
        )
    }
}

/// The three OOMs of a tracer scenario, in the order the guest causes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OomCase {
    /// The container scope's `memory.max` is hit.
    Container,
    /// The pod slice's `memory.max` is hit (the container has no limit).
    Pod,
    /// No cgroup limit: the whole 512 MiB guest runs out (victim in a best-effort pod).
    Global,
}

impl OomCase {
    /// Every case, in run order.
    pub const ALL: [OomCase; 3] = [OomCase::Container, OomCase::Pod, OomCase::Global];

    /// The name in the guest's `case=` markers.
    pub fn name(self) -> &'static str {
        match self {
            OomCase::Container => "container",
            OomCase::Pod => "pod",
            OomCase::Global => "global",
        }
    }

    /// The QoS class of the case's pod (part of the cgroup path).
    pub fn qos(self) -> &'static str {
        match self {
            OomCase::Global => "besteffort",
            _ => "burstable",
        }
    }
}

/// Everything the guest needs to know, written to `/etc/matrix.env`.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestPlan {
    /// Scenarios to run, in order.
    pub scenarios: Vec<Scenario>,
    /// The container of the pressured scenario.
    pub pressured: PodIds,
    /// The pods of the BPF tracer scenario, one per [`OomCase`].
    pub tracer_bpf: [PodIds; 3],
    /// The pods of the kmsg tracer scenario, one per [`OomCase`].
    pub tracer_kmsg: [PodIds; 3],
    /// The sidecar scenario's pod and its app container (the one that is OOM-killed).
    pub sidecar: PodIds,
    /// The sidecar scenario: the container ID of `pressured`'s own container in that pod.
    pub sidecar_own_container: String,
    /// The sidecar scenario: `setpriv` arguments for the chart's security context
    /// ([`crate::ChartSecurity::setpriv_args`]); no argument may hold a space.
    pub sidecar_setpriv: Vec<String>,
    /// pressured: the container's `memory.max` in bytes.
    pub pressured_limit: u64,
    /// pressured: `source.poll_interval_ms`.
    pub pressured_poll_ms: u64,
    /// pressured: the hog's growth per step (KiB) and pause between steps (ms).
    pub pressured_growth: (u64, u64),
    /// tracer: `memory.max` of the limited cgroup in the memcg cases, in bytes.
    pub tracer_limit: u64,
    /// Extra flags of `oom-tracer` in the BPF scenario.
    pub tracer_bpf_flags: Vec<String>,
    /// Extra flags of `oom-tracer` in the kmsg-only scenario.
    pub tracer_kmsg_flags: Vec<String>,
}

impl GuestPlan {
    /// The pods of a tracer scenario.
    pub fn tracer_pods(&self, scenario: Scenario) -> Option<&[PodIds; 3]> {
        match scenario {
            Scenario::TracerBpf => Some(&self.tracer_bpf),
            Scenario::TracerKmsg => Some(&self.tracer_kmsg),
            Scenario::Pressured | Scenario::PressuredSidecar => None,
        }
    }

    /// The contents of `/etc/matrix.env`, sourced by the init script.
    pub fn env_file(&self) -> String {
        let mut s = String::new();
        let names: Vec<&str> = self.scenarios.iter().map(|s| s.name()).collect();
        let _ = writeln!(s, "SCENARIOS=\"{}\"", names.join(" "));
        let mut ids = |prefix: &str, p: &PodIds| {
            let _ = writeln!(
                s,
                "{prefix}_UID={}\n{prefix}_UID_US={}\n{prefix}_CID={}",
                p.uid,
                p.uid_underscored(),
                p.container_id
            );
        };
        ids("P", &self.pressured);
        for (i, p) in self.tracer_bpf.iter().enumerate() {
            ids(&format!("B{}", i + 1), p);
        }
        for (i, p) in self.tracer_kmsg.iter().enumerate() {
            ids(&format!("K{}", i + 1), p);
        }
        ids("S", &self.sidecar);
        let _ = writeln!(
            s,
            "S_OWN_CID={}\nS_SETPRIV=\"{}\"",
            self.sidecar_own_container,
            self.sidecar_setpriv.join(" ")
        );
        let _ = writeln!(
            s,
            "P_LIMIT={}\nP_POLL_MS={}\nP_CHUNK_KIB={}\nP_INTERVAL_MS={}\nP_SETTLE_S=2\nP_AFTER_S=2",
            self.pressured_limit,
            self.pressured_poll_ms,
            self.pressured_growth.0,
            self.pressured_growth.1
        );
        let _ = writeln!(
            s,
            "T_LIMIT={}\nT_AFTER_S=1\nT_PORT=9464\nT_READY_TIMEOUT_DS=600",
            self.tracer_limit
        );
        let _ = writeln!(s, "T_BPF_FLAGS=\"{}\"", self.tracer_bpf_flags.join(" "));
        let _ = writeln!(s, "T_KMSG_FLAGS=\"{}\"", self.tracer_kmsg_flags.join(" "));
        s
    }
}

/// The shared objects an `ldd` listing names with an absolute path (the dynamic loader included).
pub fn parse_ldd(output: &str) -> Vec<PathBuf> {
    let mut libs = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)";
        // "linux-vdso.so.1 (0x...)" has no file.
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            let p = PathBuf::from(p);
            if !libs.contains(&p) {
                libs.push(p);
            }
        }
    }
    libs
}

fn read(path: &Path) -> Result<Vec<u8>, MatrixError> {
    std::fs::read(path).map_err(|source| MatrixError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Adds a host program to the archive at `dest`, with the libraries `ldd` lists for it at their own paths.
pub fn add_program(fs: &mut Initramfs, host: &Path, dest: &str) -> Result<(), MatrixError> {
    fs.file(dest, read(host)?, 0o755);
    let out = Command::new("ldd")
        .arg(host)
        .output()
        .map_err(|source| MatrixError::Spawn {
            command: format!("ldd {}", host.display()),
            source,
        })?;
    // A static program makes ldd exit 1 ("not a dynamic executable"): nothing to add.
    for lib in parse_ldd(&String::from_utf8_lossy(&out.stdout)) {
        let name = lib.to_string_lossy().into_owned();
        if !fs.contains(&name) {
            fs.file(&name, read(&lib)?, 0o755);
        }
    }
    Ok(())
}

/// Compiles the memory hog with `gcc -static -O2` into `out`.
pub fn build_hog(out: &Path) -> Result<(), MatrixError> {
    let src = out.with_extension("c");
    std::fs::write(&src, HOG_SOURCE).map_err(|source| MatrixError::Io {
        path: src.clone(),
        source,
    })?;
    let output = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-o"])
        .arg(out)
        .arg(&src)
        .output()
        .map_err(|source| MatrixError::Spawn {
            command: "gcc -static (package gcc, libc6-dev)".into(),
            source,
        })?;
    if !output.status.success() {
        return Err(MatrixError::Command {
            command: format!("gcc -static -O2 -o {} {}", out.display(), src.display()),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Host programs to put in the guest.
#[derive(Debug, Clone)]
pub struct GuestPrograms {
    /// A busybox binary (static: `busybox-static`).
    pub busybox: PathBuf,
    /// The compiled memory hog.
    pub hog: PathBuf,
    /// `pressured`, when the pressured scenario runs.
    pub pressured: Option<PathBuf>,
    /// `oom-tracer`, when a tracer scenario runs.
    pub oom_tracer: Option<PathBuf>,
    /// util-linux `unshare` and `setpriv`, when the sidecar scenario runs (busybox's `unshare` has
    /// no cgroup namespace, and it has no `setpriv`).
    pub sandbox: Option<(PathBuf, PathBuf)>,
}

/// The guest's initramfs: init script, parameters, busybox, hog and the programs under test.
pub fn build_initramfs(plan: &GuestPlan, progs: &GuestPrograms) -> Result<Initramfs, MatrixError> {
    let mut fs = Initramfs::new();
    for d in ["/proc", "/sys", "/dev", "/tmp", "/run", "/root"] {
        fs.dir(d);
    }
    fs.char_dev("/dev/console", 5, 1, 0o600)
        .char_dev("/dev/null", 1, 3, 0o666);
    fs.file("/init", INIT_SCRIPT.as_bytes().to_vec(), 0o755)
        .file("/etc/matrix.env", plan.env_file().into_bytes(), 0o644);
    add_program(&mut fs, &progs.busybox, "/bin/busybox")?;
    fs.symlink("/bin/sh", "busybox");
    add_program(&mut fs, &progs.hog, "/bin/hog")?;
    if let Some(p) = &progs.pressured {
        add_program(&mut fs, p, "/bin/pressured")?;
    }
    if let Some(p) = &progs.oom_tracer {
        add_program(&mut fs, p, "/bin/oom-tracer")?;
    }
    if let Some((unshare, setpriv)) = &progs.sandbox {
        add_program(&mut fs, unshare, "/bin/unshare-ul")?;
        add_program(&mut fs, setpriv, "/bin/setpriv")?;
    }
    Ok(fs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_listing_gives_absolute_library_paths_and_loader() {
        // `ldd target/release/pressured` on this machine (Debian bookworm, glibc 2.36).
        let out = "\
\tlinux-vdso.so.1 (0x00007ffc4a3f2000)
\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0a1c000000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f0a1bf21000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0a1bd40000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0a1c3e6000)
";
        assert_eq!(
            parse_ldd(out),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libm.so.6",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").is_empty());
    }

    #[test]
    fn pod_ids_follow_the_systemd_driver_layout() {
        let mut b = [0u8; 48];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        let p = PodIds::from_bytes(&b);
        assert_eq!(p.uid, "00010203-0405-4607-8809-0a0b0c0d0e0f");
        assert_eq!(p.container_id.len(), 64);
        assert_eq!(
            p.container_scope("burstable"),
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod00010203_0405_4607_8809_0a0b0c0d0e0f.slice/cri-containerd-{}.scope",
                p.container_id
            )
        );
    }

    #[test]
    fn env_file_names_every_id_and_flag() {
        let p = |n: u8| PodIds::from_bytes(&[n; 48]);
        let plan = GuestPlan {
            scenarios: vec![Scenario::Pressured, Scenario::TracerKmsg],
            pressured: p(1),
            tracer_bpf: [p(2), p(3), p(4)],
            tracer_kmsg: [p(5), p(6), p(7)],
            sidecar: p(8),
            sidecar_own_container: "ab".repeat(32),
            sidecar_setpriv: vec!["--reuid=65532".into(), "--no-new-privs".into()],
            pressured_limit: 64 << 20,
            pressured_poll_ms: 100,
            pressured_growth: (1024, 100),
            tracer_limit: 32 << 20,
            tracer_bpf_flags: vec![],
            tracer_kmsg_flags: vec!["--kmsg-only".into()],
        };
        let env = plan.env_file();
        assert!(env.contains("SCENARIOS=\"pressured tracer-kmsg\"\n"));
        assert!(env.contains(&format!("K3_CID={}\n", p(7).container_id)));
        assert!(env.contains(&format!("B1_UID_US={}\n", p(2).uid_underscored())));
        assert!(env.contains("P_LIMIT=67108864\n"));
        assert!(env.contains("T_KMSG_FLAGS=\"--kmsg-only\"\n"));
        assert!(env.contains(&format!("S_CID={}\n", p(8).container_id)));
        assert!(env.contains(&format!("S_OWN_CID={}\n", "ab".repeat(32))));
        assert!(env.contains("S_SETPRIV=\"--reuid=65532 --no-new-privs\"\n"));
    }
}
