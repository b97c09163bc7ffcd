//! Byte-for-byte comparison with `go tool pprof -top`.
//!
//! With `go` on PATH every case runs the real `go tool pprof -top` (with `TZ=UTC`, since pprof
//! prints the `Time:` line in the local zone and we print UTC). Without it the recorded outputs in
//! `testdata/expected/` are used; with `CI=true` a missing `go` is a failure. `PPROF_RECORD=1`
//! rewrites the recorded outputs from the live ones.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pressure_pprof::{Limits, Profile, TopOptions, top};

pub(crate) fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn go_available() -> bool {
    static GO: OnceLock<bool> = OnceLock::new();
    *GO.get_or_init(|| {
        // PPROF_NO_GO=1 exercises the recorded outputs on a machine that has Go.
        let ok = std::env::var("PPROF_NO_GO").as_deref() != Ok("1")
            && Command::new("go")
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but `go` is not on PATH: install golang-go to compare with go tool pprof"
            );
            eprintln!("go is not on PATH: comparing with the recorded go tool pprof outputs");
        }
        ok
    })
}

/// Runs `go tool pprof -top ARGS FILE`.
fn go_top(file: &Path, args: &[&str]) -> String {
    let out = Command::new("go")
        .args(["tool", "pprof", "-top"])
        .args(args)
        .arg(file)
        .env("TZ", "UTC")
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .env("PPROF_BINARY_PATH", "/nonexistent")
        .output()
        .expect("running go tool pprof");
    assert!(
        out.status.success(),
        "go tool pprof -top {args:?} {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("go tool pprof prints UTF-8")
}

/// Our report for the same flags (`-diff_base=FILE` included).
fn our_top(data: &[u8], args: &[&str]) -> String {
    let mut base = None;
    let mut options = TopOptions::default();
    for arg in args {
        if let Some(v) = arg.strip_prefix("-sample_index=") {
            options.sample_index = Some(v.to_owned());
        } else if let Some(v) = arg.strip_prefix("-nodecount=") {
            options.node_count = v.parse().expect("numeric -nodecount");
        } else if *arg == "-cum" {
            options.cum = true;
        } else if let Some(file) = arg.strip_prefix("-diff_base=") {
            let data = std::fs::read(file).expect("reading the diff base");
            base = Some(Profile::decode(&data, &Limits::default()).expect("diff base decodes"));
        } else {
            panic!("unsupported flag {arg}");
        }
    }
    let mut profile = Profile::decode(data, &Limits::default()).expect("profile decodes");
    if let Some(base) = base {
        profile = profile.diff_base(&base).expect("compatible diff base");
    }
    top(&profile, &options).expect("report builds").to_text()
}

fn recorded_path(name: &str, args: &[&str]) -> PathBuf {
    let mut file = name.to_owned();
    for a in args {
        file.push_str("__");
        file.push_str(&a.trim_start_matches('-').replace('=', "-"));
    }
    testdata().join("expected").join(format!("{file}.txt"))
}

/// Compares our output for `file` with go's (live or recorded).
pub(crate) fn check_file(name: &str, file: &Path, args: &[&str]) {
    compare(name, file, args, &[], |s| s.to_owned());
}

/// The part of a `-diff_base` report that must match: the `Type:` line and everything from
/// `Showing nodes` on. The other header lines follow the Go release (newer ones print `Time:` in
/// another format), not the numbers.
fn diff_part(text: &str) -> String {
    let mut out = String::new();
    let mut table = false;
    for line in text.lines() {
        table |= line.starts_with("Showing nodes");
        if table || line.starts_with("Type: ") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Compares `-top -diff_base=BASE ARGS NEW` with go's (live or recorded as `NAME__diff_base…`).
fn check_diff(name: &str, new: &Path, base: &Path, args: &[&str]) {
    let diff = format!("-diff_base={}", base.display());
    compare(
        &format!("{name}__diff_base"),
        new,
        args,
        &[&diff],
        diff_part,
    );
}

/// Compares `part` of our output and go's for `file` with `args` plus `hidden` (flags that are not
/// part of the recorded file's name).
fn compare(name: &str, file: &Path, args: &[&str], hidden: &[&str], part: fn(&str) -> String) {
    let data = std::fs::read(file).expect("reading test profile");
    let all: Vec<&str> = hidden.iter().chain(args).copied().collect();
    let ours = part(&our_top(&data, &all));
    let recorded = recorded_path(name, args);
    let expected = if go_available() {
        let live = part(&go_top(file, &all));
        if std::env::var("PPROF_RECORD").as_deref() == Ok("1") {
            std::fs::create_dir_all(recorded.parent().expect("has parent"))
                .expect("mkdir expected");
            std::fs::write(&recorded, &live).expect("recording output");
        }
        live
    } else {
        std::fs::read_to_string(&recorded)
            .unwrap_or_else(|e| panic!("no recorded output {}: {e}", recorded.display()))
    };
    assert!(
        ours == expected,
        "{name} {args:?}: output differs from go tool pprof -top\n--- go\n{expected}\n--- ours\n{ours}"
    );
}

/// Like [`check_file`] for an in-memory profile.
pub(crate) fn check_bytes(name: &str, data: &[u8], args: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("{name}.pb"));
    std::fs::write(&file, data).expect("writing profile");
    check_file(name, &file, args);
}

fn profile(name: &str) -> PathBuf {
    testdata().join("profiles").join(format!("{name}.pb.gz"))
}

#[test]
fn heap_profile_matches_go() {
    for args in [
        &[][..],
        &["-sample_index=alloc_space"],
        &["-sample_index=inuse_objects", "-cum"],
        &["-nodecount=5"],
        &["-sample_index=1", "-nodecount=10", "-cum"],
        &["-sample_index=alloc_objects", "-nodecount=25"],
    ] {
        check_file("heap", &profile("heap"), args);
    }
}

#[test]
fn allocs_profile_matches_go() {
    for args in [
        &[][..],
        &["-cum"],
        &["-sample_index=inuse_space", "-nodecount=8"],
        &["-sample_index=alloc_objects"],
    ] {
        check_file("allocs", &profile("allocs"), args);
    }
}

#[test]
fn cpu_profile_matches_go() {
    for args in [
        &[][..],
        &["-sample_index=samples"],
        &["-cum", "-nodecount=5"],
        &["-nodecount=12"],
    ] {
        check_file("cpu", &profile("cpu"), args);
    }
}

/// Two heap profiles of one leaking process (`testdata/leak/main.go`): the growth per function.
#[test]
fn diff_base_of_a_real_leak_matches_go() {
    for args in [
        &[][..],
        &["-cum"],
        &["-sample_index=alloc_space"],
        &["-sample_index=inuse_objects", "-nodecount=3"],
        &["-sample_index=alloc_objects", "-cum"],
    ] {
        check_diff("leak", &profile("leak-2"), &profile("leak-1"), args);
    }
    // Reversed, the leak shows as negative growth.
    check_diff("leak_reversed", &profile("leak-1"), &profile("leak-2"), &[]);
}

#[test]
fn goroutine_profile_matches_go() {
    for args in [&[][..], &["-cum"], &["-nodecount=2"]] {
        check_file("goroutine", &profile("goroutine"), args);
    }
}
