#!/usr/bin/env bash
# compare.sh measures the Go and C++ (libudt 4.11) UDT implementations side
# by side on this machine, over loopback, with udtperf: Go -> Go,
# C++ -> C++, Go -> C++ and C++ -> Go, one run of each pair in turn
# (round-robin) until each has -n runs, one test at a time. It prints per
# pair the median, least and greatest goodput (and messages a second in
# message mode), client and server CPU seconds per GB and retransmissions,
# and the Go/C++ ratios of the medians (bench/summarize).
#
# Once before the rounds and once after, bench/udpceiling measures raw UDP
# over the same loopback (one WriteTo/ReadFrom a datagram, sendmmsg/recvmmsg,
# and UDP GSO+GRO), with datagrams of the MSS less 28 bytes of IPv4 and UDP
# headers; the summary prints these ceilings and each pair's median goodput
# as a share of the GSO+GRO and the mmsg ceiling.
#
#   bench/compare.sh [-t secs] [-n runs] [-P streams] [-msg size] [-mss n] [-p port] [-o dir] [-ceiling secs] [-transport]
#
#   -t secs    length of each run (default 10)
#   -n runs    runs of each pair (default 5)
#   -P, -msg, -mss   passed to every udtperf client (defaults 1, stream mode, 1500)
#   -p port    the Go server's port; the C++ server takes the next (default 5201)
#   -o dir     keep each run's output there, as PAIR.RUN.json and .err
#              (default: a temporary directory, removed at the end); the
#              ceilings as ceiling.1.json (before) and ceiling.2.json (after)
#   -ceiling secs  length of each mode of each ceiling measurement
#              (default 2; 0 leaves the ceiling out)
#   -transport also Go Transport -> Go Transport: udtperf -transport at both
#              ends, UDT carried through a udt.Transport on sockets udtperf
#              opens (a third server, on the port after the C++ one), in
#              the same round-robin
#
# Needs go, g++ and libudt-dev. Run it on a quiet machine: every run shares
# its cores with whatever else is running.
set -euo pipefail

secs=10
runs=5
streams=1
msg=0
mss=1500
port=5201
outdir=""
transport=0
ceilsecs=2

usage() {
	echo "usage: bench/compare.sh [-t secs] [-n runs] [-P streams] [-msg size] [-mss n] [-p port] [-o dir] [-ceiling secs] [-transport]" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	if [ "$1" = -transport ]; then
		transport=1
		shift
		continue
	fi
	[ $# -ge 2 ] || { echo "compare.sh: $1 needs a value" >&2; usage; }
	case "$1" in
	-t) secs=$2 ;;
	-n) runs=$2 ;;
	-P) streams=$2 ;;
	-msg) msg=$2 ;;
	-mss) mss=$2 ;;
	-p) port=$2 ;;
	-o) outdir=$2 ;;
	-ceiling) ceilsecs=$2 ;;
	*) echo "compare.sh: unknown flag $1" >&2; usage ;;
	esac
	shift 2
done
case "$runs" in
'' | *[!0-9]* | 0) echo "compare.sh: -n $runs: runs must be a whole number of 1 or more" >&2; exit 2 ;;
esac
case "$port" in
'' | *[!0-9]*) echo "compare.sh: -p $port: not a port" >&2; exit 2 ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65533 ]; then
	echo "compare.sh: -p $port: port must be 1 to 65533" >&2
	exit 2
fi
case "$mss" in
'' | *[!0-9]*) echo "compare.sh: -mss $mss: not a number" >&2; exit 2 ;;
esac
# udtperf checks -t, -P, -msg and -mss itself: a bad one stops the first
# run; udpceiling checks -ceiling.
ceilsize=$((mss - 28))
if [ "$ceilsize" -gt 65507 ]; then
	ceilsize=65507 # the largest UDP payload over IPv4
fi

cd "$(dirname "$0")/.."
work=$(mktemp -d)
if [ -z "$outdir" ]; then
	outdir="$work/runs"
fi
mkdir -p "$outdir"
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

echo "building udtperf (Go), udtperf-cpp (C++) and udpceiling..." >&2
go build -o "$work/udtperf-go" ./examples/udtperf
go build -o "$work/udpceiling" ./bench/udpceiling
g++ -O2 -o "$work/udtperf-cpp" internal/interop/cpeer/udtperf.cpp -ludt -lpthread

args=(-t "$secs" -P "$streams" -mss "$mss" -json)
if [ "$msg" != 0 ]; then
	args+=(-msg "$msg")
fi

# The servers run for the whole comparison.
declare -A srvport=([go]=$port [cpp]=$((port + 1)) [gotr]=$((port + 2)))
impls=(go cpp)
pairs=(go-go cpp-cpp go-cpp cpp-go)
if [ "$transport" = 1 ]; then
	impls+=(gotr)
	pairs+=(gotr-gotr)
	ln -s udtperf-go "$work/udtperf-gotr"
fi
# The binary a side runs, and its flags.
declare -A implflags=([go]="" [cpp]="" [gotr]="-transport")
for impl in "${impls[@]}"; do
	# shellcheck disable=SC2086
	"$work/udtperf-$impl" -s -p "${srvport[$impl]}" -json ${implflags[$impl]} >"$work/server-$impl.json" 2>"$work/server-$impl.err" &
	pids+=($!)
done
for impl in "${impls[@]}"; do
	for _ in $(seq 50); do
		grep -q '"listening"' "$work/server-$impl.json" 2>/dev/null && break
		sleep 0.1
	done
	if ! grep -q '"listening"' "$work/server-$impl.json"; then
		echo "compare.sh: the $impl server did not start:" >&2
		cat "$work/server-$impl.err" >&2
		exit 1
	fi
done

files=()
# ceiling N WHEN measures raw UDP into ceiling.N.json and prints its
# goodput per mode.
ceiling() {
	local out="$outdir/ceiling.$1.json" status=0
	[ "$ceilsecs" = 0 ] && return
	files+=("$out")
	# Bounded: each mode ends within -ceiling secs and a tenth of a second.
	"$work/udpceiling" -size "$ceilsize" -t "$ceilsecs" -json >"$out" 2>"$outdir/ceiling.$1.err" || status=$?
	if [ $status = 2 ]; then
		cat "$outdir/ceiling.$1.err" >&2 # bad arguments
		exit 2
	fi
	local line
	line=$(sed -n 's/.*"mode":"\([a-z]*\)".*"goodput_mbps":\([0-9.]*\).*/\1 \2/p' "$out" |
		awk '{ printf "%s%s %.0f Mbit/s", (NR > 1 ? ", " : ""), $1, $2 }')
	echo "raw UDP ceiling $2 ($ceilsize B datagrams): ${line:-failed: $(head -c 300 "$outdir/ceiling.$1.err")}" >&2
	sleep 1
}
ceiling 1 before
echo "$runs runs of each pair, ${secs} s each, round-robin" >&2
for run in $(seq "$runs"); do
	for pair in "${pairs[@]}"; do
		client=${pair%-*}
		server=${pair#*-}
		out="$outdir/$pair.$run.json"
		files+=("$out")
		# Bounded: udtperf ends within -t plus its own grace times.
		status=0
		# shellcheck disable=SC2086
		"$work/udtperf-$client" -c 127.0.0.1 -p "${srvport[$server]}" "${args[@]}" ${implflags[$client]} >"$out" 2>"$outdir/$pair.$run.err" || status=$?
		if [ $status = 2 ]; then
			cat "$outdir/$pair.$run.err" >&2 # bad arguments
			exit 2
		fi
		if [ $status = 0 ]; then
			sum=$(grep '"type":"summary"' "$out")
			good=$(echo "$sum" | sed -n 's/.*"goodput_mbps":\([0-9.]*\).*/\1/p')
			mps=$(echo "$sum" | sed -n 's/.*"msgs_per_s":\([0-9.]*\).*/\1/p')
			line="$good Mbit/s"
			[ "$msg" = 0 ] || line="$line, $mps msgs/s"
			echo "run $run/$runs $client -> $server: $line" >&2
		else
			echo "run $run/$runs $client -> $server: failed: $(head -c 300 "$outdir/$pair.$run.err")" >&2
		fi
		sleep 1 # let the machine settle between runs
	done
done
ceiling 2 after
echo >&2
go run ./bench/summarize "${files[@]}"
