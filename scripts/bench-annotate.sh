#!/usr/bin/env bash
# Kill -> annotation latency of oom-tracer through a real kube-apiserver (pressure-testkit's control
# plane; oom-tracer as its chart's ServiceAccount).
#
# Runs N real memcg v1 OOM kills (root, cgroup v1 memory hierarchy), each in a fresh kubelet-shaped
# cgroup whose pod the API server holds, and prints p50/p99/max of the time from the kernel's
# oom_kill counter moving to the annotation being visible on the pod. Goal: p99 <= 200 ms.
#
# Usage: scripts/bench-annotate.sh [ROUNDS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_ROUNDS="${1:-20}"
cargo test --release -p oom-tracer-cli --test tests bench_kill_to_annotation_latency -- --ignored --nocapture 2>&1 \
  | grep -E '^kill->annotation|panicked|skipping' || { echo "benchmark failed" >&2; exit 1; }
