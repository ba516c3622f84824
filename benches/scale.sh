#!/usr/bin/env bash
# Scale checks for the README's performance table, each in a fresh network namespace when
# run as root (so TIME_WAIT and counters belong to the check alone). Every run is bounded.
#
#   benches/scale.sh [memory|held|held-serve|startup|cpu]...   (default: all)
#
#   memory      1,000,000 client-closed connections over 16 source addresses: peak RSS
#   held        9,000 connections held open at once against the embedded server
#   held-serve  19,900 held open against `tcpbench serve` in another process (the fd hard
#               limit, 20,000 per process, leaves room for the runtime's own descriptors)
#   startup     wall time of the default `tcpbench --conns 10000`
#   cpu         user and system CPU of a peak-rate run (RST close, 16 flows, 10 s)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$here/target/release/tcpbench
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
checks=${*:-memory held held-serve startup cpu}

if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  fresh() { unshare -n bash -c 'ip link set lo up && exec "$@"' fresh "$@"; }
else
  fresh() { "$@"; }
  echo "WARNING: not root: checks share this namespace"
fi

# Most ESTABLISHED sockets seen in this namespace while "$@" runs (sampled every 200 ms).
peak_established() {
  "$@" > /tmp/tcpbench-scale.out &
  local pid=$! peak=0 n
  while kill -0 "$pid" 2>/dev/null; do
    n=$(ss -Htn state established | wc -l)
    [ "$n" -gt "$peak" ] && peak=$n
    sleep 0.2
  done
  wait "$pid"
  echo "peak ESTABLISHED sockets (both ends counted): $peak"
  sed -n 2p /tmp/tcpbench-scale.out
}
export -f peak_established
export bin

for check in $checks; do
  echo "== $check"
  case $check in
    memory)
      fresh /usr/bin/time -f 'peak RSS %M KiB, wall %e s, user %U s, sys %S s' \
        "$bin" -q --conns 1000000 --close client --bind 127.0.0.2-127.0.0.17 --duration 10m | sed -n '2p;/errors/,$p'
      ;;
    held)
      fresh bash -c 'peak_established "$bin" -q --conns 9000 --concurrency 9000 --hold 3s --requests 0'
      ;;
    held-serve)
      fresh bash -c '
        "$bin" serve --listen 127.0.0.1:0 --backlog 4096 --duration 60s 2> /tmp/tcpbench-serve.err > /dev/null &
        srv=$!
        for _ in $(seq 50); do grep -q listening /tmp/tcpbench-serve.err && break; sleep 0.1; done
        addr=$(grep -oE "127\.0\.0\.1:[0-9]+" /tmp/tcpbench-serve.err)
        peak_established "$bin" -q --target "$addr" --conns 19900 --concurrency 19900 --hold 5s --requests 0
        kill -TERM "$srv"; wait "$srv" || true'
      ;;
    startup)
      fresh /usr/bin/time -f 'wall %e s' "$bin" -q --conns 10000 | sed -n 2p
      ;;
    cpu)
      fresh /usr/bin/time -f 'user %U s, sys %S s' "$bin" -q --duration 10s --payload 1 --close rst --concurrency 16 | sed -n 2p
      ;;
    *) echo "unknown check $check" >&2; exit 2 ;;
  esac
done
