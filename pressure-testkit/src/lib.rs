//! Test support for pressure: fake Kubernetes API server, cgroup fixtures, memory hogs and the qemu kernel-matrix harness. Not published.
#![deny(missing_docs)]

mod matrix;

pub use matrix::{
    GuestPlan, GuestPrograms, GuestReport, HOG_SOURCE, INIT_SCRIPT, Initramfs, Kernel, MARKER,
    MatrixError, MatrixRow, OomCase, PodIds, QemuRun, QemuSpec, Scenario, ScenarioLog, Verdict,
    add_program, build_hog, build_initramfs, cloud_packages, fetch_kernel, judge_pressured,
    judge_tracer, parse_ldd, render_table, rfc3339_seconds, run_qemu,
};
