#!/usr/bin/env bash
# The engines side by side (issue #19's targets): the C reference pinned, tcpbench --engine
# tokio and --engine uring, alternating in one run (ref, tokio, uring, ref, ...), medians and
# ratios; then syscalls per full cycle (both ends, strace -fc over a fixed count) and RSS per
# held connection (VmHWM via /usr/bin/time -v).
#
#   benches/engine.sh [N] [SECONDS] [CASES]
#
#   N        runs of each side per cell           (default 3)
#   SECONDS  length of each run                   (default 5)
#   CASES    any of: rst1 nowait1 rst16 nowait16 syscalls memory million
#            (default "rst1 nowait1 rst16 nowait16 syscalls memory"; million: --conns
#            1000000 peak RSS, long)
#
# rst1/nowait1: 1 flow, --close rst / client-nowait; the reference's client and server run
# under taskset -c 0, as tcpbench pins its client thread and server worker to CPU 0.
# rst16/nowait16: 16 flows, nobody pinned but tcpbench's own threads.
# Every run is in a fresh network namespace when root (see compare-ref.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
case ${1:-} in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
n=${1:-3}
secs=${2:-5}
cases=${3:-rst1 nowait1 rst16 nowait16 syscalls memory}
target=${CARGO_TARGET_DIR:-$here/target}
bin=$target/release/tcpbench
ref=$target/ref
for x in "$n" "$secs"; do
  [[ $x =~ ^[1-9][0-9]*$ ]] || { echo "engine.sh: '$x' is not a positive whole number; see $0 --help" >&2; exit 2; }
done
for tool in python3 bc strace /usr/bin/time "${CC:-gcc}"; do
  command -v "$tool" >/dev/null || { echo "engine.sh: needs $tool" >&2; exit 2; }
done
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
mkdir -p "$ref"
for prog in ref-client ref-server; do
  "${CC:-gcc}" -O2 -Wall -Wextra -pthread -o "$ref/$prog" "$here/benches/ref/$prog.c" -lm
done
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  fresh() { unshare -n bash -c 'ip link set lo up && exec "$@"' fresh "$@"; }
else
  fresh() { "$@"; }
  echo "WARNING: not root or no unshare: runs share this namespace's TIME_WAIT; figures drift"
fi
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { sed -nE "s/.* $1=([0-9.]+).*/\1/p" <<<" $2"; }
json=$(mktemp)
trap 'rm -f "$json"' EXIT
report() {
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["rate_cps"], r["latency"]["total"]["p50_us"], r["totals"]["failed"], r["totals"]["attempted"])' "$json"
}

rates() {
  local label=$1 flows=$2 mode=$3 pin=$4
  local ref_r=() ref_p=() tok_r=() tok_p=() ur_r=() ur_p=()
  local taskset=()
  [ "$pin" = pin ] && taskset=(taskset -c 0)
  for _ in $(seq "$n"); do
    line=$(fresh "${taskset[@]}" bash "$here/benches/ref/run.sh" "$ref" "$secs" "$flows" "$mode" 1 1)
    ref_r+=("$(field tps "$line")"); ref_p+=("$(field p50_us "$line")")
    for engine in tokio uring; do
      fresh "$bin" -q --engine "$engine" --duration "${secs}s" --concurrency "$flows" \
        --payload 1 --close "$mode" --json "$json" >/dev/null
      read -r rate p50 failed _ < <(report)
      [ "$failed" = 0 ] || echo "note: $engine $label: $failed failed" >&2
      if [ "$engine" = tokio ]; then tok_r+=("$rate"); tok_p+=("$p50"); else ur_r+=("$rate"); ur_p+=("$p50"); fi
    done
  done
  local rr rp tr tp ur up
  rr=$(printf '%s\n' "${ref_r[@]}" | median); rp=$(printf '%s\n' "${ref_p[@]}" | median)
  tr=$(printf '%s\n' "${tok_r[@]}" | median); tp=$(printf '%s\n' "${tok_p[@]}" | median)
  ur=$(printf '%s\n' "${ur_r[@]}" | median); up=$(printf '%s\n' "${ur_p[@]}" | median)
  printf '%-9s %9.0f %9.0f %9.0f %6.2f %6.2f %8.1f %8.1f %8.1f\n' "$label" "$rr" "$tr" "$ur" \
    "$(echo "$tr / $rr" | bc -l)" "$(echo "$ur / $rr" | bc -l)" "$rp" "$tp" "$up"
}

syscalls() {
  # Two counts, 2000 and 6000 cycles: the difference per cycle leaves out what a run does
  # once (setup, the 150 ms calibration loop, the sampler's ticks).
  calls() {
    local out
    out=$(mktemp)
    fresh strace -f -c -o "$out" "$bin" -q --engine "$1" --conns "$2" --concurrency 1 \
      --payload 1 --close rst --no-accept-wait --sample-interval 1s --drain 0s --json "$json" >/dev/null
    # Columns: % time, seconds, usecs/call, calls, [errors,] syscall.
    awk '$NF != "total" && $4 ~ /^[0-9]+$/ {print $NF, $4}' "$out" | sort
    rm -f "$out"
  }
  for engine in tokio uring; do
    join -a 2 -e 0 -o 0,1.2,2.2 <(calls "$engine" 2000) <(calls "$engine" 6000) \
      | awk -v e="$engine" '{d = ($3 - $2) / 4000; if (d >= 0.05) {t += d; s = s sprintf(" %s %.2f", $1, d)}}
          END {printf "syscalls/cycle %-6s %5.1f (both ends; per call:%s)\n", e, t, s}'
  done
}

memory() {
  for engine in tokio uring; do
    for c in 1000 9000; do
      out=$(mktemp)
      fresh /usr/bin/time -v -o "$out" "$bin" -q --engine "$engine" --conns "$c" --concurrency "$c" \
        --hold 2s --payload 1 --close client-nowait --json "$json" >/dev/null
      kb=$(sed -nE 's/.*Maximum resident set size \(kbytes\): ([0-9]+).*/\1/p' "$out")
      read -r _ _ failed _ < <(report)
      printf 'memory %-6s --concurrency %5s --hold 2s: peak RSS %7s KiB (%s failed)\n' "$engine" "$c" "$kb" "$failed"
      eval "rss_${engine}_$c=$kb"
      rm -f "$out"
    done
    a="rss_${engine}_1000" b="rss_${engine}_9000"
    printf 'memory %-6s per held connection (both ends): %.2f KiB\n' "$engine" \
      "$(echo "(${!b} - ${!a}) / 8000" | bc -l)"
  done
}

million() {
  for engine in tokio uring; do
    out=$(mktemp)
    fresh /usr/bin/time -v -o "$out" "$bin" -q --engine "$engine" --conns 1000000 --payload 1 \
      --close rst --json "$json" >/dev/null
    printf 'memory %-6s --conns 1000000: peak RSS %s KiB\n' "$engine" \
      "$(sed -nE 's/.*Maximum resident set size \(kbytes\): ([0-9]+).*/\1/p' "$out")"
    rm -f "$out"
  done
}

header=0
for case in $cases; do
  case $case in
    rst1 | nowait1 | rst16 | nowait16)
      if [ $header = 0 ]; then
        printf '%-9s %9s %9s %9s %6s %6s %8s %8s %8s\n' case ref/s tokio/s uring/s tok/ref ur/ref p50_ref p50_tok p50_ur
        header=1
      fi ;;
  esac
  case $case in
    rst1) rates "rst 1" 1 rst pin ;;
    nowait1) rates "nowait 1" 1 client-nowait pin ;;
    rst16) rates "rst 16" 16 rst float ;;
    nowait16) rates "nowait 16" 16 client-nowait float ;;
    syscalls) syscalls ;;
    memory) memory ;;
    million) million ;;
    *) echo "engine.sh: unknown case '$case'; see $0 --help" >&2; exit 2 ;;
  esac
done
