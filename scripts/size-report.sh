#!/usr/bin/env bash
# Size report of the release binaries (issue 19): each binary's size as built and stripped, gzip -9 of
# the stripped one, its image's size when a docker daemon answers, and the ten largest crates by code
# size (nm symbol sizes grouped by the crate that names the function; generic code is counted under
# the crate that defines it, as cargo-bloat does).
#
# Usage: scripts/size-report.sh [--check] [BIN...]   (default: target/release/pressured and oom-tracer;
#                                                    build them first: cargo build --release -p pressured-cli
#                                                    -p oom-tracer-cli --bin pressured --bin oom-tracer)
#        scripts/size-report.sh --record             rewrites scripts/size-figures.txt from this build
# --check fails (exit 1) when a stripped binary is more than 10 % larger than its figure in
# scripts/size-figures.txt (CI runs it after its release build); --record writes the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
FIGURES=scripts/size-figures.txt
GROWTH_PERCENT=${GROWTH_PERCENT:-10}
mode=report
case "${1:-}" in
  --check) mode=check; shift ;;
  --record) mode=record; shift ;;
esac
bins=("$@")
[[ ${#bins[@]} -gt 0 ]] || bins=(target/release/pressured target/release/oom-tracer)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

image_of() {
  case "$1" in
    pressured) echo "pressured" ;;
    oom-tracer) echo "oom-tracer" ;;
  esac
}

status=0
records=()
for bin in "${bins[@]}"; do
  [[ -f $bin ]] || { echo "$bin: not built" >&2; status=1; continue; }
  name=$(basename "$bin")
  strip -o "$work/$name" "$bin"
  size=$(stat -c %s "$bin")
  stripped=$(stat -c %s "$work/$name")
  gz=$(gzip -9 -c "$work/$name" | wc -c)
  linkage=$(file -b "$bin" | grep -o 'statically linked\|dynamically linked\|static-pie linked' | head -1)
  image="n/a (no docker daemon)"
  if docker info >/dev/null 2>&1; then
    image=$(docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -m1 "$(image_of "$name")" || echo "none built")
  fi
  printf '%s: %.2f MiB as built, %.2f MiB stripped (%d bytes), gzip -9 %.2f MB; %s; image: %s\n' \
    "$name" "$(echo "$size / 1048576" | bc -l)" "$(echo "$stripped / 1048576" | bc -l)" "$stripped" \
    "$(echo "$gz / 1000000" | bc -l)" "${linkage:-?}" "$image"
  echo "  ten largest crates by code size (text symbols):"
  nm -C --print-size --size-sort --radix=d "$bin" 2>/dev/null | awk '
    $3 ~ /^[tTwW]$/ {
      sym = $0; sub(/^[0-9]+ [0-9]+ [tTwW] /, "", sym)
      while (sym ~ /^[<&*(]/ || sym ~ /^(dyn|impl|mut|const) /) { sub(/^[<&*(]|^(dyn|impl|mut|const) /, "", sym) }
      crate = sym; sub(/::.*/, "", crate); sub(/[<> ].*/, "", crate)
      if (index(sym, "::") == 0) crate = "[C-or-unnamed]"
      bytes[crate] += $2; total += $2
    }
    END { for (c in bytes) printf "%d %s\n", bytes[c], c; printf "%d [total]\n", total }' |
    sort -rn | head -11 | awk '{ printf "    %8.1f KiB  %s\n", $1 / 1024, $2 }'
  records+=("$name $stripped")
  if [[ $mode == check ]]; then
    recorded=$(awk -v n="$name" '$1 == n { print $2 }' "$FIGURES" 2>/dev/null || true)
    if [[ -z $recorded ]]; then
      echo "  no recorded figure for $name in $FIGURES yet (add it: scripts/size-report.sh --record)" >&2
    elif (( stripped * 100 > recorded * (100 + GROWTH_PERCENT) )); then
      echo "  FAIL: $name stripped $stripped bytes, more than $GROWTH_PERCENT % over the recorded $recorded ($FIGURES)" >&2
      status=1
    else
      echo "  within $GROWTH_PERCENT % of the recorded $recorded bytes"
    fi
  fi
done
if [[ $mode == record ]]; then
  {
    echo "# Stripped sizes in bytes of the release binaries; scripts/size-report.sh --check fails CI when"
    echo "# one grows more than 10 % over its figure. Rewrite with scripts/size-report.sh --record."
    printf '%s\n' "${records[@]}"
  } > "$FIGURES"
  echo "recorded in $FIGURES"
fi
exit $status
