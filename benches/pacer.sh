#!/usr/bin/env bash
# How well the open loop keeps its schedule, and what that costs: the figures of issue #15
# and README's "What is measured". Each run is bounded (--conns) and, as root, isolated in a
# fresh network namespace (--isolate).
#
#   benches/pacer.sh [RUNS]        RUNS per rate (default 3)
#   TCPBENCH=path/to/tcpbench benches/pacer.sh   another binary (e.g. a build before the pacer)
#
# For --rate 1000 and 5000 (2000 conns, --close rst): start-lag p50/p99, the service connect
# p50 and the connect p50 measured from the scheduled start, and how many connections waited
# for a free worker. For --rate 100 (500 conns, 5 s): tcpbench's CPU (user + system) per
# second of load, what the precise wait costs at low rates.
#
# Targets (a quiet 2-core machine): start-lag p50 <= 10 µs and p99 <= 100 µs; from-schedule
# connect p50 <= connect p50 + 10 µs. The machine's load average is printed with each run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${TCPBENCH:-}" ]; then
  cargo build --release --quiet --manifest-path "$here/Cargo.toml"
  TCPBENCH=$here/target/release/tcpbench
fi
runs=${1:-3}
isolate=()
if [ "$(id -u)" = 0 ]; then isolate=(--isolate); else echo "WARNING: not root: runs share this namespace"; fi

figures='
  def f: . * 10 | round / 10;
  [ (.config.load.open.rate // 0),
    (.latency.start_lag.p50_us // "-" | if type == "number" then f else . end),
    (.latency.start_lag.p99_us // "-" | if type == "number" then f else . end),
    (.latency.connect.p50_us | f),
    (.latency_from_schedule.connect.p50_us | f),
    (.latency_from_schedule.queued // "-"),
    ((.cpu.user_s + .cpu.sys_s) / .duration_s * 100 | f),
    .totals.succeeded ] | @tsv'

# The machine's own floor: a thread that does nothing but read the clock for 2 s, and the
# gaps it sees (the vCPU or the thread taken away). No pacer starts on time inside a gap.
python3 - <<'PY'
import time
end = time.monotonic_ns() + 2_000_000_000
last, gaps, worst = time.monotonic_ns(), [0, 0, 0], 0
while last < end:
    t = time.monotonic_ns()
    g = t - last
    for i, limit in enumerate((50_000, 100_000, 1_000_000)):
        gaps[i] += g > limit
    worst = max(worst, g)
    last = t
print(f"floor: 2 s of spinning on the clock saw {gaps[0]} gaps > 50 µs, {gaps[1]} > 100 µs, "
      f"{gaps[2]} > 1 ms, the longest {worst / 1e3:.0f} µs")
PY

printf 'rate\tlag_p50\tlag_p99\tconnect_p50\tsched_connect_p50\tqueued\tcpu_%%core\tok\tloadavg\n'
for rate in 1000 5000; do
  for _ in $(seq "$runs"); do
    row=$("$TCPBENCH" run --rate "$rate" --conns 2000 --close rst -q "${isolate[@]}" --json - 2>/dev/null |
      jq -r "$figures")
    printf '%s\t%s\n' "$row" "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
for _ in $(seq "$runs"); do
  row=$("$TCPBENCH" run --rate 100 --conns 500 --close rst -q "${isolate[@]}" --json - 2>/dev/null |
    jq -r "$figures")
  printf '%s\t%s\n' "$row" "$(cut -d' ' -f1 /proc/loadavg)"
done
