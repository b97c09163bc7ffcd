//! Debian cloud kernels: pick the newest package of a series from `apt-cache search`, download it with
//! `apt-get download`, unpack it with `dpkg-deb -x` and keep it in a cache directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::MatrixError;

/// A kernel package unpacked in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// The series asked for, e.g. `6.1`.
    pub series: String,
    /// The Debian package, e.g. `linux-image-6.1.0-56-cloud-amd64`.
    pub package: String,
    /// The bootable image (`boot/vmlinuz-*` inside the unpacked package).
    pub vmlinuz: PathBuf,
    /// The kernel's build configuration (`boot/config-*`), when the package ships one.
    pub config: Option<PathBuf>,
}

/// The signed cloud-kernel packages of `series` (e.g. `6.1`, `6.12`) named in `apt-cache search` output,
/// newest first. Meta packages (`linux-image-6.12-cloud-amd64`), `-dbg` and `-unsigned` are left out.
pub fn cloud_packages(apt_cache_search: &str, series: &str) -> Vec<String> {
    let mut found: Vec<(Vec<u64>, String)> = apt_cache_search
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|name| {
            let version = name
                .strip_prefix("linux-image-")?
                .strip_suffix("-cloud-amd64")?;
            let rest = version.strip_prefix(series)?.strip_prefix('.')?;
            // "6.1" must not match "6.12.x": the next character after the series is a '.', and the
            // remainder may not hold another flavour (e.g. "-rt").
            if rest.contains("cloud") || rest.contains("-rt") {
                return None;
            }
            Some((version_key(version), name.to_string()))
        })
        .collect();
    found.sort();
    found.dedup();
    found.into_iter().rev().map(|(_, name)| name).collect()
}

/// The numeric components of a kernel version (`6.12.117+deb12` → `[6, 12, 117, 12]`), for ordering.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Runs a command, returning its stdout, or an error naming the command and its stderr.
fn run(cmd: &mut Command) -> Result<String, MatrixError> {
    let what = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| MatrixError::Spawn {
        command: what.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(MatrixError::Command {
            command: what,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The kernel of `package` already unpacked under `cache`, if any.
fn cached(cache: &Path, series: &str, package: &str) -> Option<Kernel> {
    let boot = cache.join(package).join("boot");
    let mut vmlinuz = None;
    let mut config = None;
    for entry in std::fs::read_dir(&boot).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("vmlinuz-") {
            vmlinuz = Some(entry.path());
        } else if name.starts_with("config-") {
            config = Some(entry.path());
        }
    }
    Some(Kernel {
        series: series.to_string(),
        package: package.to_string(),
        vmlinuz: vmlinuz?,
        config,
    })
}

/// Finds, downloads (once) and unpacks the newest cloud kernel of `series` into `cache`.
///
/// Runs `apt-cache search` (and `apt-get update` once if it finds nothing). Without apt, or when the
/// package cannot be found, a kernel of the series already in the cache is used.
pub fn fetch_kernel(cache: &Path, series: &str) -> Result<Kernel, MatrixError> {
    std::fs::create_dir_all(cache).map_err(|source| MatrixError::Io {
        path: cache.to_path_buf(),
        source,
    })?;
    let pattern = format!(
        "^linux-image-{}\\.[0-9].*-cloud-amd64$",
        series.replace('.', "\\.")
    );
    let search = || {
        run(Command::new("apt-cache").args(["search", "--names-only", &pattern]))
            .map(|out| cloud_packages(&out, series))
    };
    let mut packages = search().unwrap_or_default();
    if packages.is_empty() {
        // A fresh machine may have no package lists yet.
        let _ = run(Command::new("apt-get").args(["update", "-qq"]));
        packages = search().unwrap_or_default();
    }
    if let Some(package) = packages.first() {
        if let Some(k) = cached(cache, series, package) {
            return Ok(k);
        }
        let debs = cache.join("debs");
        std::fs::create_dir_all(&debs).map_err(|source| MatrixError::Io {
            path: debs.clone(),
            source,
        })?;
        run(Command::new("apt-get")
            .args(["download", "-qq", package])
            .current_dir(&debs))?;
        let deb = std::fs::read_dir(&debs)
            .map_err(|source| MatrixError::Io {
                path: debs.clone(),
                source,
            })?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
            })
            .ok_or_else(|| MatrixError::Kernel {
                series: series.to_string(),
                message: format!(
                    "apt-get download {package} left no .deb in {}",
                    debs.display()
                ),
            })?;
        let tmp = cache.join(format!("{package}.partial"));
        let _ = std::fs::remove_dir_all(&tmp);
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
        let dest = cache.join(package);
        std::fs::rename(&tmp, &dest).map_err(|source| MatrixError::Io { path: dest, source })?;
        let _ = std::fs::remove_file(&deb);
        return cached(cache, series, package).ok_or_else(|| MatrixError::Kernel {
            series: series.to_string(),
            message: format!("{package} holds no boot/vmlinuz-*"),
        });
    }
    // No package list: fall back to whatever of this series was unpacked before, newest first.
    let mut names: Vec<String> = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| format!("{} x", e.file_name().to_string_lossy()))
        .collect();
    names.sort();
    let listing = names.join("\n");
    cloud_packages(&listing, series)
        .iter()
        .find_map(|p| cached(cache, series, p))
        .ok_or_else(|| MatrixError::Kernel {
            series: series.to_string(),
            message: format!(
                "no linux-image-{series}.*-cloud-amd64 in apt-cache (is this Debian bookworm with \
                 package lists?) and none cached in {}",
                cache.display()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as printed by `apt-cache search linux-image | grep cloud-amd64` on this machine (bookworm).
    const SEARCH: &str = "\
linux-image-6.1.0-47-cloud-amd64-dbg - Debug symbols for linux-image-6.1.0-47-cloud-amd64
linux-image-6.1.0-9-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)
linux-image-6.1.0-56-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
linux-image-cloud-amd64 - Linux for x86-64 cloud (meta-package)
linux-image-6.1.0-47-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)
linux-image-6.12-cloud-amd64 - Linux for x86-64 cloud (meta-package)
linux-image-6.12.100+deb12-cloud-amd64 - Linux 6.12 for x86-64 cloud (signed)
linux-image-6.12.117+deb12-cloud-amd64 - Linux 6.12 for x86-64 cloud (signed)
linux-image-6.12.99+deb12-cloud-amd64 - Linux 6.12 for x86-64 cloud (signed)
linux-image-6.1.0-56-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)
linux-image-6.1.0-56-rt-cloud-amd64 - not a real package, a flavour guard
";

    #[test]
    fn newest_signed_package_of_each_series_first() {
        assert_eq!(
            cloud_packages(SEARCH, "6.1"),
            [
                "linux-image-6.1.0-56-cloud-amd64",
                "linux-image-6.1.0-47-cloud-amd64",
                "linux-image-6.1.0-9-cloud-amd64"
            ]
        );
        assert_eq!(
            cloud_packages(SEARCH, "6.12"),
            [
                "linux-image-6.12.117+deb12-cloud-amd64",
                "linux-image-6.12.100+deb12-cloud-amd64",
                "linux-image-6.12.99+deb12-cloud-amd64"
            ]
        );
        assert!(cloud_packages(SEARCH, "6.18").is_empty());
    }

    #[test]
    fn cached_kernel_is_found_without_apt() {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path().join("linux-image-6.1.0-56-cloud-amd64/boot");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::write(boot.join("vmlinuz-6.1.0-56-cloud-amd64"), b"x").unwrap();
        let k = cached(dir.path(), "6.1", "linux-image-6.1.0-56-cloud-amd64").unwrap();
        assert_eq!(k.vmlinuz, boot.join("vmlinuz-6.1.0-56-cloud-amd64"));
        assert_eq!(k.config, None);
        assert!(cached(dir.path(), "6.12", "linux-image-6.12.117+deb12-cloud-amd64").is_none());
    }
}
