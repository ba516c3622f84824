#!/usr/bin/env bash
# Runs the C reference pair on loopback: ref-server on a port the kernel picks, ref-client
# against it for SECONDS, then stops the server. Prints the client's key=value line.
#
#   benches/ref/run.sh BIN_DIR SECONDS FLOWS MODE PAYLOAD REQUESTS [ref-client flags: -B]
#
# MODE is the client's close (client, client-nowait, server, rst); with `server` the server
# closes first once it echoed PAYLOAD x REQUESTS bytes. The server runs one blocking thread
# per flow, so no flow waits for another's connection to be served. Both processes end by
# themselves (ref-client after SECONDS + 30 s at most, ref-server after SECONDS + 20 s).
set -euo pipefail
[ $# -ge 6 ] || { echo "usage: $0 BIN_DIR SECONDS FLOWS MODE PAYLOAD REQUESTS [-B]" >&2; exit 2; }
bin=$1 secs=$2 flows=$3 mode=$4 payload=$5 requests=$6
shift 6
close_first=()
[ "$mode" = server ] && close_first=(-f $((payload * requests)))
portfile=$(mktemp)
"$bin/ref-server" -t "$flows" -d $((secs + 20)) "${close_first[@]}" >"$portfile" &
server=$!
# The server ends by our signal: its status is not the run's.
stop_server() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -f "$portfile"
}
trap stop_server EXIT
for _ in $(seq 250); do
  grep -q '^port=' "$portfile" && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.02
done
port=$(sed -n 's/^port=//p' "$portfile")
[ -n "$port" ] || { echo "ref-server did not start" >&2; exit 1; }
"$bin/ref-client" -p "$port" -c "$flows" -d "$secs" -m "$mode" -s "$payload" -r "$requests" "$@"
