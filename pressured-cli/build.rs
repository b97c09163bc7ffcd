//! Links `pressured` as a position-dependent executable (`-no-pie`).
//!
//! A position-independent executable is relocated at every start: the dynamic loader reads some 1 MiB
//! of relocation records and writes every pointer in `.data.rel.ro` (650 KiB of vtables and tables in
//! this binary), which then stay resident as private, dirty memory for the life of the process. A
//! sidecar that watches its pod's memory should cost as little memory as it can, so the binary is
//! linked at a fixed address instead, as Go links its binaries by default; shared libraries stay
//! randomised. Measured with `scripts/sidecar-footprint.sh` (see the README's Performance table).

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux") {
        println!("cargo:rustc-link-arg-bin=pressured=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
