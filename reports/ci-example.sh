#!/usr/bin/env bash
# A CI performance-regression step: run the benchmark five times, compare the medians with
# the stored baseline (reports/baseline.json), and fail the job on a regression.
#
#   reports/ci-example.sh            compare a fresh run with the baseline (exit 1: regression)
#   reports/ci-example.sh --refresh  make a new baseline on this machine
#
# The Markdown verdict goes to stdout and, on GitHub Actions, to the job summary.
# Needs root for --isolate (a network namespace per run, so TIME_WAIT and counters left by
# other jobs do not leak in); drop --isolate, in both places at once, where that is not allowed.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH=(--conns 20000 --concurrency 16 --close rst --repeat 5 --isolate -q)

cargo build --release --quiet
if [ "${1:-}" = "--refresh" ]; then
  ./target/release/tcpbench "${BENCH[@]}" --json reports/baseline.json
  exit 0
fi

out="${TMPDIR:-/tmp}/tcpbench-candidate.json"
./target/release/tcpbench "${BENCH[@]}" --json "$out" > /dev/null
./target/release/tcpbench compare reports/baseline.json "$out" --format markdown \
  | tee -a "${GITHUB_STEP_SUMMARY:-/dev/null}"
