#!/bin/sh
# Prediction quality of predicted_oom on recorded memory timelines (issue 17).
#
#   scripts/bench-prediction.sh [DIR...] [--config FILE]
#
# Replays every <name>.jsonl of the corpus directories (default: pressure-testkit/fixtures/growth, real
# programs in real cgroup v1 memcgs, see its README) through the engine with the default configuration
# and prints per timeline the lead and ETA error of the first predicted_oom, the lead of the first
# critical, the event counts, and the goals (all, tune and holdout splits). Exits 1 when a goal is
# missed. The same evaluation runs as a test: cargo test -p pressure-testkit --test integration prediction
set -eu
cd "$(dirname "$0")/.."
exec cargo run --quiet -p pressure-testkit --bin bench-prediction -- "$@"
