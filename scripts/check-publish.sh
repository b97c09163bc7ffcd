#!/usr/bin/env bash
# Checks that every library crate is publishable on its own (issue 9, "Crates"):
#   1. its docs build without warnings (`RUSTDOCFLAGS=-D warnings cargo doc --no-deps`);
#   2. `cargo package` succeeds, verifying by default: each .crate is unpacked and built alone,
#      with the unpublished sibling crates resolved from cargo's local overlay registry;
#   3. no package reaches outside its crate, and the committed BPF object is in pressure-ebpf's.
#
# Usage: scripts/check-publish.sh [--no-verify]
# Runs on a clean checkout: cargo refuses uncommitted changes in a packaged crate (no --allow-dirty).
set -euo pipefail

cd "$(dirname "$0")/.."

CRATES=(pressure-core pressure-cgroup pressure-kubelet pressure-ebpf pressure-pprof pressure-actions pressure-plot)
PKG_ARGS=()
for c in "${CRATES[@]}"; do PKG_ARGS+=(-p "$c"); done

VERIFY=()
case "${1:-}" in
    --no-verify) VERIFY=(--no-verify) ;;
    "") ;;
    *) echo "usage: $0 [--no-verify]" >&2; exit 2 ;;
esac

echo "== docs (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked "${PKG_ARGS[@]}"

echo "== examples build"
cargo build --examples --locked "${PKG_ARGS[@]}"

# `cargo package` verifies each crate against the others through a temporary local registry, and
# unpacks them from it into $CARGO_HOME/registry/src/-<hash of that registry's path>/, reusing a
# directory that exists: a crate verified here before, with other contents, would be compiled as it
# was then (seen when pressure-core's `Event` changed: pressure-actions met the old one). Remove them.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/pressure-*

echo "== package contents"
for c in "${CRATES[@]}"; do
    files=$(cargo package --list --locked -p "$c")
    # Every include_str!/include_bytes! target must be inside the crate, hence in its package.
    while IFS= read -r hit; do
        src=${hit%%:*}
        target=$(sed -E 's/.*include_(str|bytes|bytes_aligned)!\("([^"]+)"\).*/\2/' <<<"${hit#*:}")
        resolved=$(realpath -m --relative-to="$c" "$(dirname "$src")/$target")
        case "$resolved" in
            ../*) echo "$src includes $target, outside $c" >&2; exit 1 ;;
        esac
        grep -qxF "$resolved" <<<"$files" || { echo "$src includes $target, not packaged in $c" >&2; exit 1; }
    done < <(grep -rnoE 'include_(str|bytes|bytes_aligned)!\("[^"]+"\)' "$c/src" "$c/examples" "$c/tests" 2>/dev/null \
        | sed -E 's/^([^:]+):[0-9]+:/\1:/' || true)
    echo "$c: $(wc -l <<<"$files") files"
done
cargo package --list --locked -p pressure-ebpf | grep -qx 'bpf/oom_tracer.bpf.o' \
    || { echo "pressure-ebpf: bpf/oom_tracer.bpf.o is not packaged" >&2; exit 1; }

echo "== cargo package ${VERIFY[*]}"
# One invocation for all: cargo packages interdependent workspace crates together, resolving each
# unpublished sibling from the .crate files it just built.
cargo package --locked "${VERIFY[@]}" "${PKG_ARGS[@]}"
target_dir=$(cargo metadata --no-deps --format-version 1 | sed -E 's/.*"target_directory":"([^"]+)".*/\1/')
for c in "${CRATES[@]}"; do ls -l "$target_dir/package/$c-"*.crate; done
echo "OK: ${CRATES[*]} are publishable"
