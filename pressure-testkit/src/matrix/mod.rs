//! The qemu kernel matrix (issue 8): boots Debian cloud kernels with an initramfs holding `pressured`,
//! `oom-tracer`, busybox and a memory hog, runs the scenarios on cgroup v2 inside the guest and judges
//! what comes back on the serial console.
//!
//! The pieces, each usable and tested alone: [`fetch_kernel`] (apt, cache), [`Initramfs`] (newc cpio),
//! [`build_initramfs`] and [`GuestPlan`] (what goes in), [`run_qemu`] (boot, console), [`GuestReport`]
//! (marker lines), [`judge_pressured`] / [`judge_tracer`] ([`Verdict`]s), [`render_table`].
//! The binary `kernel-matrix` wires them together.

mod cpio;
mod guest;
mod kernel;
mod qemu;
mod report;
mod verdict;

use std::path::PathBuf;

pub use cpio::Initramfs;
pub use guest::{
    GuestPlan, GuestPrograms, HOG_SOURCE, INIT_SCRIPT, OomCase, PodIds, Scenario, add_program,
    build_hog, build_initramfs, parse_ldd,
};
pub use kernel::{Kernel, cloud_packages, fetch_kernel};
pub use qemu::{QemuRun, QemuSpec, run_qemu};
pub use report::{GuestReport, MARKER, ScenarioLog};
pub use verdict::{Verdict, judge_pressured, judge_sidecar, judge_tracer, rfc3339_seconds};

/// An error of the kernel-matrix harness; each names the command, path or kernel at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatrixError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A program could not be started (not installed?).
    #[error("cannot run {command}: {source}")]
    Spawn {
        /// The command and the package that provides it.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A program failed.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its standard error.
        stderr: String,
    },
    /// No kernel of a series could be found or unpacked.
    #[error("kernel {series}: {message}")]
    Kernel {
        /// The series, e.g. `6.1`.
        series: String,
        /// What went wrong.
        message: String,
    },
}

/// One cell of the result table.
#[derive(Debug, Clone)]
pub struct MatrixRow {
    /// The kernel (release or package).
    pub kernel: String,
    /// The scenario name.
    pub scenario: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// The result table (kernel × scenario → PASS/FAIL with the key figures), then each failure's reasons.
pub fn render_table(rows: &[MatrixRow]) -> String {
    let kw = rows
        .iter()
        .map(|r| r.kernel.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let sw = rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut s = format!("{:kw$}  {:sw$}  result  figures\n", "kernel", "scenario");
    s.push_str(&format!(
        "{}  {}  ------  -------\n",
        "-".repeat(kw),
        "-".repeat(sw)
    ));
    for r in rows {
        s.push_str(&format!(
            "{:kw$}  {:sw$}  {:6}  {}\n",
            r.kernel,
            r.scenario,
            if r.verdict.pass { "PASS" } else { "FAIL" },
            r.verdict.figures
        ));
    }
    for r in rows.iter().filter(|r| !r.verdict.pass) {
        s.push_str(&format!("\nFAIL {} / {}:\n", r.kernel, r.scenario));
        for reason in &r.verdict.reasons {
            s.push_str(&format!("  - {reason}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_cell_and_the_reasons_of_failures() {
        let rows = [
            MatrixRow {
                kernel: "6.1.0-56-cloud-amd64".into(),
                scenario: "pressured".into(),
                verdict: Verdict {
                    pass: true,
                    figures: "warn@70%".into(),
                    reasons: vec![],
                },
            },
            MatrixRow {
                kernel: "6.12.117+deb12-cloud-amd64".into(),
                scenario: "tracer-kmsg".into(),
                verdict: Verdict::fail("oom-tracer missing"),
            },
        ];
        let t = render_table(&rows);
        assert!(
            t.contains("6.1.0-56-cloud-amd64        pressured    PASS    warn@70%"),
            "{t}"
        );
        assert!(t.contains("FAIL    \n"), "{t}");
        assert!(
            t.contains("FAIL 6.12.117+deb12-cloud-amd64 / tracer-kmsg:\n  - oom-tracer missing\n")
        );
    }
}
