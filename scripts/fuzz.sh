#!/bin/sh
# Fuzzes the replay line parser and the config loader (and the pprof decoder) for 10 minutes each
# (FUZZ_SECONDS to change). Not part of CI.
#
# With nightly and cargo-fuzz (`cargo install cargo-fuzz`) the libFuzzer targets run; without them
# the stable mutation loop of pressured-cli/src/fuzz.rs runs the same checks.
set -eu
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-600}"
if cargo +nightly fuzz --version >/dev/null 2>&1; then
    (cd pressured-cli && cargo +nightly fuzz run replay_line -- -max_total_time="$secs")
    (cd pressured-cli && cargo +nightly fuzz run config -- -max_total_time="$secs")
    (cd pressure-pprof && cargo +nightly fuzz run decode -- -max_total_time="$secs")
else
    echo "fuzz.sh: no nightly cargo-fuzz; running the stable mutation loops" >&2
    PRESSURED_FUZZ_SECONDS="$secs" cargo test --release -p pressured-cli --bin pressured -- \
        --ignored --nocapture --test-threads 1 fuzz_
fi
