#!/usr/bin/env bash
# Runs BenchmarkTunLinks: UDT-Go (default controller and CongestionModel),
# UDT-C++ (libudt 4.11), TCP cubic and TCP BBR, each alone, across the same
# TUN-emulated links between two network namespaces, then TCP cubic beside
# a UDT-Go flow (each controller); prints the go test output, then the table.
#
# Needs root, /dev/net/tun, iproute2, libudt-dev and g++. About 3 minutes
# per link and round with the default windows (4 links: 12 minutes a round).
#
# Environment (defaults in brackets):
#   UDT_TUN_ROUNDS  rounds, the senders' order rotated each round [1]
#   UDT_TUN_WARMUP  warm-up before each measurement [5s]
#   UDT_TUN_WINDOW  measurement window [20s]
#   UDT_TUN_LINKS   -bench pattern below BenchmarkTunLinks selecting links,
#                   e.g. '100Mbit/rtt=100ms/loss=1%' [all]
#   UDT_TUN_OUT     file to keep the report in: each measurement as it is
#                   taken, then the table and every round [a temporary file]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "tunlinks: needs root (network namespaces and TUN devices)" >&2
  exit 1
fi

out=${UDT_TUN_OUT:-}
if [ -z "$out" ]; then
  out=$(mktemp /tmp/tunlinks.XXXXXX.md)
  trap 'rm -f "$out"' EXIT
fi
export UDT_TUN_OUT=$out
# Fail rather than skip when something the bench needs is missing.
export UDT_NETNS=require UDT_INTEROP=require

bench='^BenchmarkTunLinks$'
if [ -n "${UDT_TUN_LINKS:-}" ]; then
  bench="$bench/$UDT_TUN_LINKS"
fi
go test -run '^$' -bench "$bench" -benchtime 1x -timeout 0 ./integrationtests

echo
echo "== tunlinks: rounds=${UDT_TUN_ROUNDS:-1} warmup=${UDT_TUN_WARMUP:-5s} window=${UDT_TUN_WINDOW:-20s} ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
cat "$out"
