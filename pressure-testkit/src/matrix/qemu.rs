//! Booting a kernel and initramfs under `qemu-system-x86_64` (TCG) and collecting its serial console.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::MatrixError;

/// How to boot one guest.
#[derive(Debug, Clone)]
pub struct QemuSpec {
    /// The qemu binary (`qemu-system-x86_64`).
    pub qemu: PathBuf,
    /// The kernel image.
    pub vmlinuz: PathBuf,
    /// The initramfs (uncompressed newc cpio).
    pub initrd: PathBuf,
    /// Guest memory in MiB (512: small enough for a quick global OOM).
    pub memory_mib: u32,
    /// The kernel command line.
    pub append: String,
    /// qemu is killed after this long.
    pub timeout: Duration,
    /// Where the whole console transcript is written, as it arrives.
    pub log: PathBuf,
}

impl QemuSpec {
    /// The kernel command line of the matrix: console on the first serial port, only emergencies
    /// printed on it (the OOM reports would interleave with the markers; they stay in the kernel log),
    /// and any panic ends the run at once (`-no-reboot` turns the reboot into an exit).
    pub const APPEND: &'static str = "console=ttyS0 loglevel=0 panic=-1 oops=panic";

    /// The qemu arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "-m",
            &self.memory_mib.to_string(),
            "-smp",
            "1",
            "-cpu",
            "max",
            "-nographic",
            "-no-reboot",
            // No network card: skips the iPXE option ROM (a second of TCG time per boot).
            "-net",
            "none",
        ]
        .map(String::from)
        .to_vec();
        a.push("-kernel".into());
        a.push(self.vmlinuz.to_string_lossy().into_owned());
        a.push("-initrd".into());
        a.push(self.initrd.to_string_lossy().into_owned());
        a.push("-append".into());
        a.push(self.append.clone());
        a
    }
}

/// What a boot produced.
#[derive(Debug, Clone)]
pub struct QemuRun {
    /// Everything the guest wrote on its serial console.
    pub console: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
    /// qemu had to be killed at the timeout.
    pub timed_out: bool,
    /// qemu's exit status (None when it was killed).
    pub status: Option<ExitStatus>,
}

/// Boots the guest and waits for it to power off (or for the timeout).
pub fn run_qemu(spec: &QemuSpec) -> Result<QemuRun, MatrixError> {
    let start = Instant::now();
    let mut child = Command::new(&spec.qemu)
        .args(spec.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| MatrixError::Spawn {
            command: format!("{} (package qemu-system-x86)", spec.qemu.display()),
            source,
        })?;
    let console = Arc::new(Mutex::new(String::new()));
    let mut log = std::fs::File::create(&spec.log).map_err(|source| MatrixError::Io {
        path: spec.log.clone(),
        source,
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let sink = Arc::clone(&console);
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while r.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
            let line = String::from_utf8_lossy(&buf);
            let _ = log.write_all(line.as_bytes());
            sink.lock().expect("console lock").push_str(&line);
            buf.clear();
        }
    });
    let stderr = child.stderr.take().expect("stderr is piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() >= spec.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                timed_out = true;
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(source) => {
                return Err(MatrixError::Spawn {
                    command: spec.qemu.display().to_string(),
                    source,
                });
            }
        }
    };
    let _ = reader.join();
    let qemu_stderr = err_reader.join().unwrap_or_default();
    let mut console = std::mem::take(&mut *console.lock().expect("console lock"));
    if !qemu_stderr.trim().is_empty() {
        console.push_str("\n[qemu stderr] ");
        console.push_str(qemu_stderr.trim());
        console.push('\n');
    }
    Ok(QemuRun {
        console,
        elapsed: start.elapsed(),
        timed_out,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_follow_the_matrix_recipe() {
        let spec = QemuSpec {
            qemu: "qemu-system-x86_64".into(),
            vmlinuz: "/k/vmlinuz".into(),
            initrd: "/k/initrd.cpio".into(),
            memory_mib: 512,
            append: QemuSpec::APPEND.into(),
            timeout: Duration::from_secs(1),
            log: "/tmp/x.log".into(),
        };
        let a = spec.args().join(" ");
        assert_eq!(
            a,
            "-m 512 -smp 1 -cpu max -nographic -no-reboot -net none -kernel /k/vmlinuz -initrd /k/initrd.cpio \
             -append console=ttyS0 loglevel=0 panic=-1 oops=panic"
        );
    }
}
