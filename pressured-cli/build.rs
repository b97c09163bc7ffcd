//! Link options of `pressured` that keep a sidecar's resident set small.
//!
//! - **`-no-pie`.** A position-independent executable is relocated at every start: the dynamic loader
//!   reads some 1 MiB of relocation records and writes every pointer in `.data.rel.ro` (650 KiB of
//!   vtables and tables in this binary), which then stay resident as private, dirty memory for the life
//!   of the process. The binary is linked at a fixed address instead, as Go links its binaries by
//!   default; shared libraries stay randomised.
//! - **Hot code together.** The kernel maps a touched page of a file together with up to 64 KiB around
//!   it (fault-around), so the 1 200 small functions a sidecar runs, scattered over 9 MB of code, would
//!   keep megabytes of the binary resident. `link-order.txt` (made by `scripts/link-order.sh` from
//!   callgrind runs of the sidecar) lists them: the steady loop's functions first, then start-up's.
//!   This script turns the list into a linker script that places them, in that order, in an output
//!   section `.text.pressured_hot` before `.text` (`INSERT BEFORE .text`: the default layout stays
//!   otherwise). Functions are matched by section name (rustc puts each function in
//!   `.text.<symbol>`, a `#[cold]` one in `.text.unlikely.<symbol>`): first by the exact names, which
//!   put just the functions that ran next to each other in a build like the one the list was made
//!   from (same `-C metadata`: the README's and CI's `cargo build --release`), then by the names with
//!   the parts that change from build to build replaced by wildcards — the hash of a legacy name
//!   (`17h<16 hex digits>E`), the crate disambiguators of a v0 name (`Cs<base-62>_`) and the
//!   `.llvm.<n>` suffix of a promoted local — so any build of the same source (other features,
//!   another rustc, the static image build) still gets the functions that ran in the section, among
//!   the other instantiations of the same generic functions (1.6 MB in all instead of 0.45 MB). Both
//!   GNU ld and lld read `INSERT`. `PRESSURED_LINK_ORDER=0` turns it off.
//!
//! Measured with `scripts/sidecar-footprint.sh`, which fails when the hot section is missing, when
//! code the sidecar runs (callgrind) lies outside it — the list is stale — or when the peak is over its
//! goal (see the README's Performance table).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let Ok(list) = std::fs::read_to_string(manifest.join("link-order.txt")) else {
        return;
    };
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("hot-code.ld");
    std::fs::write(&out, linker_script(&list)).expect("writing the hot-code linker script");
    println!(
        "cargo:rustc-link-arg-bin=pressured=-Wl,-T,{}",
        out.display()
    );
}

/// The linker script for a `link-order.txt`: the listed functions in list order, first by their
/// exact names, then by patterns that match them whatever their build-specific parts.
///
/// A legacy symbol's hash tells apart the instantiations of a generic function (`RawVec<T>::grow_one`
/// for each `T`), but it also changes with the build (`-C metadata`: features, `--target`, versions).
/// Exact names place just the functions that ran, next to each other, in the build the list was made
/// from; the patterns then place whatever else has those names — in another build (the static image,
/// other features), the functions that ran, among their sibling instantiations. Cold functions
/// (`#[cold]`) are in `.text.unlikely.<symbol>`.
fn linker_script(list: &str) -> String {
    let symbols: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|symbol| {
            // Comments, addresses and callgrind's pseudo-functions (`(below main)`) are no symbols.
            !symbol.is_empty()
                && !symbol.starts_with("0x")
                && symbol
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_$.".contains(&b))
        })
        .collect();
    let mut script = String::from(
        "/* Generated by pressured-cli/build.rs from link-order.txt. */\nSECTIONS\n{\n  .text.pressured_hot :\n  {\n",
    );
    let mut seen = std::collections::HashSet::new();
    for name in symbols
        .iter()
        .map(|s| (*s).to_owned())
        .chain(symbols.iter().map(|s| section_pattern(s)))
    {
        if seen.insert(name.clone()) {
            let _ = writeln!(script, "    *(.text.{name} .text.unlikely.{name})");
        }
    }
    script.push_str("  }\n}\nINSERT BEFORE .text;\n");
    script
}

/// A symbol's section-name pattern: build-specific parts replaced by `*`.
fn section_pattern(symbol: &str) -> String {
    // A promoted local: `name.llvm.1234`.
    let symbol = symbol.split(".llvm.").next().unwrap_or(symbol);
    if let Some(rest) = symbol.strip_prefix("_ZN") {
        // Legacy: `_ZN` path `17h` 16 hex digits `E`.
        if let Some(body) = rest.strip_suffix('E')
            && body.len() > 19
            && body[body.len() - 19..].starts_with("17h")
            && body[body.len() - 16..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        {
            return format!("_ZN{}17h*", &body[..body.len() - 19]);
        }
        return format!("{symbol}*");
    }
    if symbol.starts_with("_R") {
        // v0: each crate root is `Cs` base-62 disambiguator `_` followed by a decimal length.
        let mut pattern = String::with_capacity(symbol.len());
        let mut rest = symbol;
        while let Some(at) = rest.find("Cs") {
            let after = &rest[at + 2..];
            let end = after
                .find('_')
                .filter(|&n| n > 0 && after[..n].bytes().all(|b| b.is_ascii_alphanumeric()));
            match end {
                Some(n) if after[n + 1..].starts_with(|c: char| c.is_ascii_digit()) => {
                    pattern.push_str(&rest[..at]);
                    pattern.push_str("Cs*_");
                    rest = &after[n + 1..];
                }
                _ => {
                    pattern.push_str(&rest[..at + 2]);
                    rest = after;
                }
            }
        }
        pattern.push_str(rest);
        pattern.push('*');
        return pattern;
    }
    // C functions (the vendored Lua, libc shims) have stable names.
    symbol.to_owned()
}
