#!/usr/bin/env bash
# Runs BenchmarkTunDiag: one UDT-Go flow across one TUN-emulated link
# between two network namespaces, then a table with a row per bin of time:
# what the sender's tracer saw (packets sent and retransmitted, losses by
# reason, NAKs, ACKs, timeouts, RTT, period, window, in flight) beside what
# the bottleneck delivered (IP rate, new data, duplicates, random and queue
# drops) and what the receiver read. A diagnostic for congestion-control
# work; bench/tunlinks.sh is the measurement to compare.
#
#   bench/diag.sh
#   UDT_DIAG_MBIT=20 UDT_DIAG_RTT=300ms UDT_DIAG_LOSS=0.5 UDT_DIAG_PEER=cpp \
#     UDT_DIAG_BIN=250ms UDT_DIAG_DURATION=20s bench/diag.sh
#
# Needs root, /dev/net/tun and iproute2; with UDT_DIAG_PEER=cpp, libudt-dev
# and g++. Takes the duration plus a few seconds.
#
# Environment (defaults in brackets):
#   UDT_DIAG_MBIT      bottleneck rate, Mbit/s of IP packets, both ways [100]
#   UDT_DIAG_RTT       round trip [100ms]
#   UDT_DIAG_LOSS      random loss of the data direction, in % [1]
#   UDT_DIAG_PEER      the receiver: go (Go → Go) or cpp (Go → C++, libudt
#                      4.11 in cpeer) [go]
#   UDT_DIAG_CC        the sender's controller: default, model or daimd [default]
#   UDT_DIAG_BIN       width of a row [1s]
#   UDT_DIAG_DURATION  how long the flow runs [30s]
#   UDT_DIAG_SEED      seed of the link's random loss [7]
#   UDT_DIAG_BESIDE    a kernel TCP flow started with ours across the same
#                      bottleneck, its reader's rate a column: cubic, bbr or
#                      none [none]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "diag: needs root (network namespaces and TUN devices)" >&2
  exit 1
fi
# Fail rather than skip when something the bench needs is missing.
export UDT_NETNS=require UDT_INTEROP=require
go test -run '^$' -bench '^BenchmarkTunDiag$' -benchtime 1x -timeout 0 ./integrationtests
