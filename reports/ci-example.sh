#!/usr/bin/env bash
# A CI performance-regression step: the baseline's build (main) and this change's build, run
# interleaved in this one job by `tcpbench ab`, and judged on 95% confidence intervals. The
# job fails only when even the optimistic end of a change's interval is past its threshold.
#
#   reports/ci-example.sh                               main vs the working tree
#   BASE_REF=v0.1.0 reports/ci-example.sh               another baseline
#   reports/ci-example.sh --candidate-args '--server-echo-delay 2ms'   (a regression on purpose)
#
# Why not a stored baseline: a report made on another runner (or on this one on another day)
# measured another machine; this project's kind of machine has been 2.4x slower from one day to
# the next. Both sides in one job, alternating, is what survives that (reports/README.md).
#
# Extra arguments go to `tcpbench ab` (--rounds, --fail-if, --candidate-args, ...). The
# Markdown verdict goes to stdout and, on GitHub Actions, to the job summary. Needs root for
# --isolate (a network namespace per run); drop it where that is not allowed.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_REF="${BASE_REF:-main}"
BENCH=(--conns 20000 --concurrency 16 --close rst --isolate)

cargo build --release --quiet
# The baseline's build, from a worktree of BASE_REF, in a target dir of its own.
base_src="$(mktemp -d)"
trap 'git worktree remove --force "$base_src" >/dev/null 2>&1 || rm -rf "$base_src"' EXIT
git worktree add --quiet --detach "$base_src" "$BASE_REF"
cargo build --release --quiet --manifest-path "$base_src/Cargo.toml" \
  --target-dir target/ab-baseline

./target/release/tcpbench ab \
  --baseline-bin target/ab-baseline/release/tcpbench \
  --candidate-bin target/release/tcpbench \
  --rounds 5 --format markdown "$@" -- "${BENCH[@]}" \
  | tee -a "${GITHUB_STEP_SUMMARY:-/dev/null}"
