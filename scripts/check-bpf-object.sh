#!/bin/sh
# Fails when pressure-ebpf/bpf/oom_tracer.bpf.o is stale: rebuilds it into a temp file with
# scripts/build-bpf.sh and compares bytes. Run by CI (and by the pressure-ebpf test
# `committed_object_is_fresh` when clang is installed).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$here/scripts/build-bpf.sh" "$tmp" >/dev/null
if cmp -s "$tmp" "$here/pressure-ebpf/bpf/oom_tracer.bpf.o"; then
    echo "pressure-ebpf/bpf/oom_tracer.bpf.o is up to date"
else
    echo "pressure-ebpf/bpf/oom_tracer.bpf.o is stale: run scripts/build-bpf.sh and commit it" >&2
    exit 1
fi
