#!/bin/sh
# Rebuilds pressure-ebpf/bpf/oom_tracer.bpf.o from oom_tracer.bpf.c, reproducibly.
#
# Needs Debian's clang, llvm (llvm-strip) and libbpf-dev (bpf_helpers.h, bpf_core_read.h):
#   apt-get install -y clang llvm libbpf-dev
# Usage: scripts/build-bpf.sh [OUTPUT]   (default: the committed object)
# The object is committed so `cargo build` needs no clang; scripts/check-bpf-object.sh fails when
# it no longer matches this script's output.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/pressure-ebpf/bpf/oom_tracer.bpf.o}
case $out in /*) ;; *) out=$PWD/$out ;; esac
arch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
cd "$here/pressure-ebpf/bpf"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# Relative source path and no DWARF: nothing of the checkout location ends up in the object
# (BTF and the CO-RE relocations in .BTF.ext are kept by strip -g).
clang -target bpf -O2 -g -Wall -Werror \
    -idirafter "/usr/include/$arch" \
    -fdebug-prefix-map="$PWD"=. \
    -c oom_tracer.bpf.c -o "$tmp"
llvm-strip -g "$tmp"
cp "$tmp" "$out"
echo "built $out ($(wc -c <"$out") bytes, $(clang --version | head -1))"
