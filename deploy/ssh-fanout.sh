#!/usr/bin/env bash
# shellcheck disable=SC2029  # remote commands are built and %q-quoted here, on purpose
# One tcpbench agent per host over ssh, all starting at the same instant, then one merged report.
#
#   deploy/ssh-fanout.sh TARGET_HOST:PORT TOTAL_CONNS host1 host2 ...
#
# TOTAL_CONNS is split over the hosts by tcpbench itself (--agents N --agent-index I): host I
# makes TOTAL_CONNS/N connections, the first TOTAL_CONNS%N hosts one more. Each host needs
# tcpbench on its PATH (or TCPBENCH=/path/on/the/hosts), key-based ssh, and a clock kept by NTP:
# --start-at is wall-clock time, so a host whose clock is off starts off by as much.
#
# Needs bash 4.4 or later here (empty arrays under set -u).
#
# Environment:
#   TCPBENCH        tcpbench on the hosts                   (default: tcpbench)
#   TCPBENCH_LOCAL  tcpbench here, for the merge            (default: tcpbench)
#   LEAD            seconds from now to the common start    (default: 10)
#   OUT             local folder for the reports            (default: fanout-<UTC time>)
#   RUN_ARGS        more `tcpbench run` flags, word-split   (e.g. "--close rst --concurrency 32")
#   SSH_OPTS        more ssh/scp options, word-split        (e.g. "-o ConnectTimeout=5")
#
# Writes OUT/agent-I.json and OUT/agent-I.log for each host, OUT/merged.json and OUT/merged.md,
# and prints the merged summary. Exits non-zero if an agent left no report or the merge failed.
set -euo pipefail

usage() {
  echo "usage: $0 TARGET_HOST:PORT TOTAL_CONNS host1 [host2 ...]" >&2
  exit 2
}

[ "$#" -ge 3 ] || usage
target=$1
total=$2
shift 2
hosts=("$@")
agents=${#hosts[@]}
case $total in
  '' | *[!0-9]*) echo "$0: TOTAL_CONNS must be a number, not '$total'" >&2; exit 2 ;;
esac
if [ "$total" -lt "$agents" ]; then
  echo "$0: $total connections over $agents hosts leaves some host nothing" >&2
  exit 2
fi

remote_bin=${TCPBENCH:-tcpbench}
local_bin=${TCPBENCH_LOCAL:-tcpbench}
lead=${LEAD:-10}
run_id=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-fanout-$run_id}
read -r -a run_args <<<"${RUN_ARGS:-}"
read -r -a ssh_opts <<<"${SSH_OPTS:-}"
# Every ssh and scp runs in batch mode: a password prompt would hang the start.
ssh_opts=(-o BatchMode=yes "${ssh_opts[@]}")
mkdir -p "$out"

# An instant as UTC RFC 3339, with GNU date or BSD date.
rfc3339() {
  date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -r "$1" +%Y-%m-%dT%H:%M:%SZ
}

# Before fixing the start: every host answers, has tcpbench, and its clock is close to ours.
for host in "${hosts[@]}"; do
  before=$(date -u +%s)
  if ! theirs=$(ssh "${ssh_opts[@]}" "$host" "$(printf '%q' "$remote_bin") --version >/dev/null && date -u +%s"); then
    echo "$0: $host: no tcpbench at '$remote_bin' or no ssh; nothing was started" >&2
    exit 1
  fi
  after=$(date -u +%s)
  skew=$((theirs - (before + after) / 2))
  if [ "${skew#-}" -gt 1 ]; then
    echo "$0: warning: $host's clock is ${skew}s off ours; its agent will start that much off" >&2
  fi
done

start_at=$(rfc3339 $(($(date -u +%s) + lead)))
echo "tcpbench fan-out: $agents agents, $total connections in all, against $target, starting at $start_at" >&2

pids=()
for i in "${!hosts[@]}"; do
  host=${hosts[$i]}
  remote_json="/tmp/tcpbench-$run_id-agent-$i.json"
  cmd=(
    "$remote_bin" run
    --target "$target" --allow-remote
    --conns "$total" --agents "$agents" --agent-index "$i" --agent-id "$host"
    --start-at "$start_at" --quiet --json "$remote_json"
    "${run_args[@]}"
  )
  # ssh hands the remote shell one string: quote each word for it.
  ssh "${ssh_opts[@]}" "$host" "$(printf '%q ' "${cmd[@]}")" >"$out/agent-$i.log" 2>&1 &
  pids+=("$!")
done

# tcpbench exits 1 when some connections failed (they are in its report), 2 on a usage error.
for i in "${!hosts[@]}"; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  echo "  agent $i (${hosts[$i]}): exit $rc; log $out/agent-$i.log" >&2
done

reports=()
missing=0
for i in "${!hosts[@]}"; do
  host=${hosts[$i]}
  remote_json="/tmp/tcpbench-$run_id-agent-$i.json"
  if scp -q "${ssh_opts[@]}" "$host:$remote_json" "$out/agent-$i.json"; then
    ssh "${ssh_opts[@]}" "$host" "rm -f $(printf '%q' "$remote_json")" || true
    reports+=("$out/agent-$i.json")
  else
    echo "$0: $host left no report; see $out/agent-$i.log" >&2
    missing=1
  fi
done
if [ "$missing" -ne 0 ]; then
  echo "$0: not merging ${#reports[@]} of $agents reports: the totals would be short" >&2
  exit 1
fi

# Exit 1: merged, and some connections failed (they are in the report).
rc=0
"$local_bin" merge "${reports[@]}" -o "$out/merged.json" --markdown "$out/merged.md" || rc=$?
if [ "$rc" -gt 1 ]; then
  exit "$rc"
fi
echo "merged report: $out/merged.json ($out/merged.md)" >&2
