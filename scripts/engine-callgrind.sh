#!/bin/bash
# Instructions per sample of the threshold engine under callgrind, for one or more builds of it: stable
# under load, unlike the throughput of `cargo bench -p benches --bench engine` (issue 17 item 5).
#
#   scripts/engine-callgrind.sh [PRESSURE_CORE_DIR...]     (default: this checkout's pressure-core)
#
# Example, the engine before issue 17 against this one:
#   git worktree add --detach /tmp/engine-4d48bdc 4d48bdc
#   scripts/engine-callgrind.sh /tmp/engine-4d48bdc/pressure-core pressure-core
#
# Builds scripts/engine-callgrind/driver.rs (the loop of benches/engine with a fixed number of cycles:
# 100 warm-up cycles, then 900 measured, 10 000 containers, i.e. 9 M samples) once per directory, with
# the release profile of the workspace (thin LTO, 4 codegen units), and prints the instructions of the
# measured cycles per sample for the steady, oscillating and ramping series, and the events they emitted.
# Needs valgrind. Builds in $ENGINE_CALLGRIND_DIR (default /tmp/engine-callgrind).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
work=${ENGINE_CALLGRIND_DIR:-/tmp/engine-callgrind}
[ $# -gt 0 ] || set -- "$root/pressure-core"
mkdir -p "$work"
n=0
for dir in "$@"; do
  dir=$(cd "$dir" && pwd)
  n=$((n + 1))
  crate="$work/driver-$n"
  mkdir -p "$crate"
  # Engine::new(&Config) before 17b0798, Engine::new(&ThresholdsConfig, dry_run) since.
  features=""
  grep -q 'pub fn new(config: &Config)' "$dir/src/engine.rs" && features='"old"'
  cat > "$crate/Cargo.toml" <<TOML
[package]
name = "engine-callgrind-$n"
version = "0.0.0"
edition = "2024"
publish = false
[[bin]]
name = "engine-callgrind-$n"
path = "$root/scripts/engine-callgrind/driver.rs"
[dependencies]
pressure-core = { path = "$dir" }
[features]
old = []
default = [$features]
[profile.release]
lto = "thin"
codegen-units = 4
debug = "line-tables-only"
[workspace]
TOML
  (cd "$crate" && CARGO_TARGET_DIR="$work/target" cargo build --quiet --release)
  for series in steady oscillating ramping; do
    out="$work/callgrind.$n.$series"
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measure*' \
      --callgrind-out-file="$out" "$work/target/release/engine-callgrind-$n" "$series" 100 900 \
      > "$out.log" 2>&1
    ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
    events=$(sed -n 's/.*measured events \([0-9]*\).*/\1/p' "$out.log")
    awk -v d="$dir" -v s="$series" -v ir="$ir" -v e="$events" \
      'BEGIN { printf "%-50s %-12s %6.1f instructions/sample  %7d events / 9 M samples\n", d, s, ir / 9e6, e }'
  done
done
