#!/usr/bin/env bash
# Runs BenchmarkTunSelfShare: 2, 4 and 8 UDT-Go default-controller flows
# started together across a TUN-emulated 100 Mbit/s, 40 ms link (one-BDP
# drop-tail queue) between two network namespaces; each flow's goodput is
# counted by its receiver over the second half of 60 s; prints the go test
# output, then a table of Jain's fairness index, least/most and the
# aggregate per flow count.
#
# Needs root, /dev/net/tun and iproute2. One minute per flow count and
# round.
#
# Environment (defaults in brackets):
#   UDT_TUN_ROUNDS  rounds [1]
#   UDT_TUN_WARMUP  warm-up before the measurement [30s]
#   UDT_TUN_WINDOW  measurement window [30s]
#   UDT_TUN_FLOWS   -bench pattern below BenchmarkTunSelfShare selecting
#                   flow counts, e.g. 'flows=8' [all]
#   UDT_TUN_OUT     file to keep the report in: each measurement as it is
#                   taken, then the table [a temporary file]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "selfshare: needs root (network namespaces and TUN devices)" >&2
  exit 1
fi

out=${UDT_TUN_OUT:-}
if [ -z "$out" ]; then
  out=$(mktemp /tmp/selfshare.XXXXXX.md)
  trap 'rm -f "$out"' EXIT
fi
export UDT_TUN_OUT=$out
# Fail rather than skip when something the bench needs is missing.
export UDT_NETNS=require

bench='^BenchmarkTunSelfShare$'
if [ -n "${UDT_TUN_FLOWS:-}" ]; then
  bench="$bench/$UDT_TUN_FLOWS"
fi
go test -v -run '^$' -bench "$bench" -benchtime 1x -timeout 0 ./integrationtests

echo
echo "== selfshare: rounds=${UDT_TUN_ROUNDS:-1} warmup=${UDT_TUN_WARMUP:-30s} window=${UDT_TUN_WINDOW:-30s} ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
cat "$out"
