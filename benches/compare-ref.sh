#!/usr/bin/env bash
# Runs tcpbench and the project's own C reference (benches/ref/: a blocking client and echo
# server) alternately, N times each, in the same close mode, flow count and payload, and prints
# the medians and tcpbench/reference ratios: the figures for the README's Performance table.
#
#   benches/compare-ref.sh [N] [SECONDS] [FLOWS] [CASES] [PAYLOAD]
#
#   N        runs of each side per cell                   (default 3)
#   SECONDS  length of each run                           (default 10)
#   FLOWS    flow counts, space-separated                 (default "1 4 16 64")
#   CASES    any of the cases below                       (default "nowait client server rst connect explicit pinned")
#   PAYLOAD  bytes per request (1 request per connection) (default 1)
#
# Cases, each the same close mode on both sides (tcpbench flags / ref-client flags):
#   nowait   --close client-nowait                          / -m client-nowait
#   client   --close client (shutdown, read the FIN, close) / -m client
#   server   --close server (the server closes first)       / -m server (ref-server -f)
#   rst      --close rst (SO_LINGER 0)                      / -m rst
#   connect  --requests 0 (connect, shutdown, EOF, close)   / -m client -r 0
#   explicit --close client-nowait --port-strategy explicit / -m client-nowait -B
#   pinned   --close rst                                    / -m rst, both ends under taskset -c 0
#            (tcpbench pins its own threads; the reference's threads float unless pinned)
# Both are built here: tcpbench with cargo (release), the reference with gcc into
# target/ref/. Every process stops by itself.
#
# As root, every run gets a fresh network namespace of its own (unshare -n, loopback up):
# TIME_WAIT left by one run (up to tcp_max_tw_buckets, shared by the whole namespace) would
# otherwise decide the next run's figure: a full port range makes connect() search, a full
# TIME_WAIT table makes closes skip TIME_WAIT altogether. Without root the runs share the
# host's namespace, and the script says so.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
case ${1:-} in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  */*) echo "compare-ref: no REF_DIR any more: the C reference is benches/ref/, built here; drop '$1'" >&2; exit 2 ;;
esac
n=${1:-3}
secs=${2:-10}
flows=${3:-1 4 16 64}
cases=${4:-nowait client server rst connect explicit pinned}
payload=${5:-1}
target=${CARGO_TARGET_DIR:-$here/target}
bin=$target/release/tcpbench
ref=$target/ref
for x in "$n" "$secs" "$payload" $flows; do
  [[ $x =~ ^[1-9][0-9]*$ ]] || { echo "compare-ref: '$x' is not a positive whole number; see $0 --help" >&2; exit 2; }
done
command -v "${CC:-gcc}" >/dev/null || { echo "compare-ref: no C compiler (${CC:-gcc}); install gcc or set CC" >&2; exit 2; }
command -v python3 >/dev/null || { echo "compare-ref: needs python3 to read tcpbench's JSON report" >&2; exit 2; }

cargo build --release --quiet --manifest-path "$here/Cargo.toml"
mkdir -p "$ref"
for prog in ref-client ref-server; do
  "${CC:-gcc}" -O2 -Wall -Wextra -pthread -o "$ref/$prog" "$here/benches/ref/$prog.c" -lm
done

if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  fresh() { unshare -n bash -c 'ip link set lo up && exec "$@"' fresh "$@"; }
  echo "each run in a fresh network namespace"
else
  fresh() { "$@"; }
  echo "WARNING: not root or no unshare: runs share this namespace's TIME_WAIT; figures drift"
fi

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { sed -nE "s/.* $1=([0-9.]+).*/\1/p" <<<" $2"; }
json=$(mktemp)
trap 'rm -f "$json"' EXIT

printf '%-8s %5s %12s %12s %7s %10s %10s %7s\n' case flows tcpbench/s ref/s ratio p50_us p50_ref ratio
for case in $cases; do
  requests=1 pin=() ref_flags=()
  case $case in
    nowait)   flags=(--close client-nowait); mode=client-nowait ;;
    client)   flags=(--close client); mode=client ;;
    server)   flags=(--close server); mode=server ;;
    rst)      flags=(--close rst); mode=rst ;;
    connect)  flags=(--close client); mode=client; requests=0 ;;
    explicit) flags=(--close client-nowait --port-strategy explicit); mode=client-nowait; ref_flags=(-B) ;;
    pinned)   flags=(--close rst); mode=rst; pin=(taskset -c 0) ;;
    *) echo "compare-ref: unknown case '$case'; see $0 --help" >&2; exit 2 ;;
  esac
  for c in $flows; do
    ours=() theirs=() ours_p50=() theirs_p50=()
    for _ in $(seq "$n"); do
      line=$(fresh "${pin[@]}" bash "$here/benches/ref/run.sh" "$ref" "$secs" "$c" "$mode" \
        "$payload" "$requests" "${ref_flags[@]}")
      errors=$(field errors "$line")
      [ "${errors:-0}" = 0 ] || echo "note: reference $case/$c: $errors failed connections: $line" >&2
      theirs+=("$(field tps "$line")")
      theirs_p50+=("$(field p50_us "$line")")
      fresh "$bin" -q --duration "${secs}s" --concurrency "$c" --payload "$payload" \
        --requests "$requests" "${flags[@]}" --json "$json" >/dev/null
      read -r rate p50 failed < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["rate_cps"], r["latency"]["total"]["p50_us"], r["totals"]["failed"])' "$json")
      [ "$failed" = 0 ] || echo "note: tcpbench $case/$c: $failed failed connections" >&2
      ours+=("$rate")
      ours_p50+=("$p50")
    done
    a=$(printf '%s\n' "${ours[@]}" | median); b=$(printf '%s\n' "${theirs[@]}" | median)
    pa=$(printf '%s\n' "${ours_p50[@]}" | median); pb=$(printf '%s\n' "${theirs_p50[@]}" | median)
    printf '%-8s %5s %12.0f %12.0f %7.2f %10.1f %10.1f %7.2f\n' "$case" "$c" "$a" "$b" \
      "$(echo "$a / $b" | bc -l)" "$pa" "$pb" "$(echo "$pa / $pb" | bc -l)"
  done
done
