//! Link options of `pressured` that keep a sidecar's resident set small.
//!
//! - **`-no-pie`.** A position-independent executable is relocated at every start: the dynamic loader
//!   reads some 1 MiB of relocation records and writes every pointer in `.data.rel.ro` (650 KiB of
//!   vtables and tables in this binary), which then stay resident as private, dirty memory for the life
//!   of the process. The binary is linked at a fixed address instead, as Go links its binaries by
//!   default; shared libraries stay randomised.
//! - **Hot code together.** The kernel maps a touched page of a file together with up to 64 KiB around
//!   it (fault-around), so the 600 small functions a sidecar runs, scattered over 16 MB of code, would
//!   keep megabytes of the binary resident. When `ld.lld` is installed, the binary is linked by it with
//!   `--symbol-ordering-file=link-order.txt` (made by `scripts/link-order.sh` from callgrind runs of the
//!   sidecar): the steady loop's functions first, then start-up's, next to each other. Without `ld.lld`
//!   the system linker is used and a warning says what is lost. `PRESSURED_LINK_ORDER=0` turns it off.
//!
//! Measured with `scripts/sidecar-footprint.sh` (see the README's Performance table).

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=PRESSURED_LINK_ORDER");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.contains("linux") {
        return;
    }
    // A static glibc build (`-C target-feature=+crt-static`, the images) is position-dependent with
    // `-C relocation-model=static` instead: `-no-pie` on top of rustc's `-static-pie` links a binary
    // that asks for a dynamic loader and crashes at once (tried: issue 19).
    let crt_static = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .is_ok_and(|f| f.split(',').any(|f| f == "crt-static"));
    if !crt_static {
        println!("cargo:rustc-link-arg-bin=pressured=-no-pie");
    }
    if std::env::var("PRESSURED_LINK_ORDER").is_ok_and(|v| v == "0") {
        return;
    }
    let order =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("link-order.txt");
    if !order.is_file() {
        return;
    }
    if !on_path("ld.lld") {
        println!(
            "cargo:warning=ld.lld not found: pressured is linked without its hot-code order \
             (a sidecar keeps about 3 MiB more resident); install lld and run `cargo clean -p pressured-cli`, \
             or set PRESSURED_LINK_ORDER=0"
        );
        return;
    }
    println!("cargo:rustc-link-arg-bin=pressured=-fuse-ld=lld");
    println!(
        "cargo:rustc-link-arg-bin=pressured=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    // Names of functions that changed since the list was made are skipped, silently.
    println!("cargo:rustc-link-arg-bin=pressured=-Wl,--no-warn-symbol-ordering");
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
