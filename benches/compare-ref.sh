#!/usr/bin/env bash
# Runs tcpbench and the C reference (../shared/bench) alternately, N times each, in the same
# close mode and concurrency, and prints the medians and tcpbench/reference ratios:
# the figures for the README's performance table.
#
#   benches/compare-ref.sh [REF_DIR] [N] [SECONDS] [CONCURRENCIES] [CASES]
#
#   REF_DIR        folder with run-ref.sh and the C sources   (default ../shared/bench)
#   N              runs of each side per cell                 (default 3)
#   SECONDS        length of each run                         (default 10)
#   CONCURRENCIES  flows, space-separated                     (default "1 4 16 64")
#   CASES          any of: nowait rst connect explicit client (default "nowait rst connect explicit")
#
# Cases, each the same close mode on both sides:
#   nowait   = tcpbench --close client-nowait                  vs ref crr     (write, read, close)
#   rst      = tcpbench --close rst                            vs ref crr -L  (SO_LINGER 0)
#   connect  = tcpbench --requests 0 (connect, shutdown, EOF)  vs ref cc
#   explicit = tcpbench --close client-nowait --port-strategy explicit  vs ref crr -B
#   client   = tcpbench --close client (also waits for the server's FIN) vs ref crr: not the
#              same mode, shown for what the seed's close costs
# Every case sends 1 byte per request. Each process stops by itself.
#
# As root, every run gets a fresh network namespace of its own (unshare -n, loopback up):
# TIME_WAIT left by one run (up to tcp_max_tw_buckets, shared by the whole namespace) would
# otherwise decide the next run's figure: a full port range makes connect() search, a full
# TIME_WAIT table makes closes skip TIME_WAIT altogether. Without root the runs share the
# host's namespace, and the script says so.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ref=${1:-$here/../shared/bench}
n=${2:-3}
secs=${3:-10}
concs=${4:-1 4 16 64}
cases=${5:-nowait rst connect explicit}
bin=$here/target/release/tcpbench
[ -x "$ref/run-ref.sh" ] || { echo "no run-ref.sh in $ref" >&2; exit 2; }
cargo build --release --quiet --manifest-path "$here/Cargo.toml"

if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  fresh() { unshare -n bash -c 'ip link set lo up && exec "$@"' fresh "$@"; }
  echo "each run in a fresh network namespace"
else
  fresh() { "$@"; }
  echo "WARNING: not root or no unshare: runs share this namespace's TIME_WAIT; figures drift"
fi

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

printf '%-8s %5s %12s %12s %7s %10s %10s %7s\n' case flows tcpbench/s ref/s ratio p50_us p50_ref ratio
for case in $cases; do
  case $case in
    nowait)   flags=(--close client-nowait); ref_args=(crr) ;;
    rst)      flags=(--close rst); ref_args=(crr -L) ;;
    connect)  flags=(--requests 0); ref_args=(cc) ;;
    explicit) flags=(--close client-nowait --port-strategy explicit); ref_args=(crr -B) ;;
    client)   flags=(--close client); ref_args=(crr) ;;
    *) echo "unknown case $case" >&2; exit 2 ;;
  esac
  for c in $concs; do
    ours=() theirs=() ours_p50=() theirs_p50=()
    for _ in $(seq "$n"); do
      # run-ref.sh exits with its server's kill status; its output line is what counts.
      line=$(fresh bash "$ref/run-ref.sh" "$secs" "$c" "${ref_args[0]}" "${ref_args[@]:1}" || true)
      theirs+=("$(sed -E 's/.* tps=([0-9.]+).*/\1/' <<<"$line")")
      theirs_p50+=("$(sed -E 's/.* p50_us=([0-9.]+).*/\1/' <<<"$line")")
      out=$(fresh "$bin" -q --duration "${secs}s" --payload 1 --concurrency "$c" "${flags[@]}")
      ours+=("$(sed -nE 's/.*: ([0-9.]+) conn\/s.*/\1/p' <<<"$out")")
      ours_p50+=("$(awk '$1=="total" {print $4}' <<<"$out")")
    done
    a=$(printf '%s\n' "${ours[@]}" | median); b=$(printf '%s\n' "${theirs[@]}" | median)
    pa=$(printf '%s\n' "${ours_p50[@]}" | median); pb=$(printf '%s\n' "${theirs_p50[@]}" | median)
    printf '%-8s %5s %12.0f %12.0f %7.2f %10.1f %10.1f %7.2f\n' "$case" "$c" "$a" "$b" \
      "$(echo "$a / $b" | bc -l)" "$pa" "$pb" "$(echo "$pa / $pb" | bc -l)"
  done
done
