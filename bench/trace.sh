#!/usr/bin/env bash
# Traces a 10 s udtperf run across the emulated 100 Mbit/s, 100 ms link
# with 1 % random loss (TUN devices between two network namespaces), both
# ends with -trace, and draws the two traces with udttrace: the page is
# OUT/trace.html, the traces OUT/client and OUT/server.
#
#   bench/trace.sh [OUT]    (default: a new temporary directory)
#
# Needs root, /dev/net/tun and iproute2. docs/trace-100mbit-100ms-1pct.html
# is such a page.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "trace: needs root (network namespaces and TUN devices)" >&2
  exit 1
fi
out=${1:-$(mktemp -d /tmp/udttrace.XXXXXX)}
mkdir -p "$out"
UDT_TRACE_OUT=$out UDT_NETNS=require go test -count=1 -run '^TestTraceAcrossLossyLink$' -v ./integrationtests
echo "trace: $out/trace.html"
