#!/bin/sh
# Runs the qemu kernel matrix (issue 8): pressured and oom-tracer on Debian's 6.1 and 6.12 cloud kernels,
# cgroup v2, a global OOM inside the guest. Installs what it needs on Debian bookworm, then prints the
# kernel x scenario table; exits non-zero on any failure. Extra arguments go to kernel-matrix
# (e.g. --kernels 6.12 --scenarios tracer-bpf; --help lists them).
set -eu
cd "$(dirname "$0")/.."
missing=""
command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86"
[ -x /bin/busybox ] || missing="$missing busybox-static"
command -v gcc >/dev/null || missing="$missing gcc libc6-dev"
command -v strip >/dev/null || missing="$missing binutils"
command -v dpkg-deb >/dev/null || missing="$missing dpkg"
if [ -n "$missing" ]; then
	apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi
exec cargo run --release -p pressure-testkit --bin kernel-matrix -- "$@"
