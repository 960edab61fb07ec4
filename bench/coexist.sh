#!/usr/bin/env bash
# Runs BenchmarkTunCoexist: TCP cubic started together with a second flow
# (TCP cubic, TCP BBR, UDT C++ 4.11, UDT-Go DAIMD, UDT-Go default) and TCP
# BBR beside the UDT-Go default controller, across TUN-emulated links
# between two network namespaces (100 Mbit/s at 100 ms without loss and at
# 0.1 % and 1 % loss, 50 Mbit/s at 40 ms without loss, one-BDP drop-tail
# queues); prints the go test output, then the sharing table.
#
# Needs root, /dev/net/tun, iproute2, libudt-dev and g++. Six pairs per
# link and round, each warm-up plus window long: about 12 minutes a round
# with the defaults below.
#
# Environment (defaults in brackets):
#   UDT_TUN_ROUNDS  rounds, the order of the pairs rotated each round [1]
#   UDT_TUN_WARMUP  warm-up before each measurement [5s]
#   UDT_TUN_WINDOW  measurement window [25s]
#   UDT_TUN_LINKS   -bench pattern below BenchmarkTunCoexist selecting
#                   links, e.g. '100Mbit/rtt=100ms/loss=0%' [all]
#   UDT_TUN_PAIRS   pairs to run, comma-separated, as the table names
#                   them, e.g. 'TCP cubic + Go default,TCP BBR + Go default'
#                   [all]
#   UDT_TUN_OUT     file to keep the report in: each measurement as it is
#                   taken, then the table and every round [a temporary file]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "coexist: needs root (network namespaces and TUN devices)" >&2
  exit 1
fi

out=${UDT_TUN_OUT:-}
if [ -z "$out" ]; then
  out=$(mktemp /tmp/coexist.XXXXXX.md)
  trap 'rm -f "$out"' EXIT
fi
export UDT_TUN_OUT=$out
export UDT_TUN_WINDOW=${UDT_TUN_WINDOW:-25s}
# Fail rather than skip when something the bench needs is missing.
export UDT_NETNS=require UDT_INTEROP=require

bench='^BenchmarkTunCoexist$'
if [ -n "${UDT_TUN_LINKS:-}" ]; then
  bench="$bench/$UDT_TUN_LINKS"
fi
go test -v -run '^$' -bench "$bench" -benchtime 1x -timeout 0 ./integrationtests

echo
echo "== coexist: rounds=${UDT_TUN_ROUNDS:-1} warmup=${UDT_TUN_WARMUP:-5s} window=$UDT_TUN_WINDOW ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
cat "$out"
