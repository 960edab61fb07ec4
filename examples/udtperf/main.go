// Command udtperf measures UDT throughput between two hosts, in the manner
// of iperf3: a server that handles one test after another, and a client
// that sends to it for a fixed time over one or more UDT connections.
//
//	udtperf -s [-p port] [-json] [-trace dir [-trace-packets=false]]
//	udtperf -c host [-p port] [-t secs] [-P streams] [-mss n] [-msg size] [-json] [-trace dir [-trace-packets=false]]
//
// The client opens a TCP control connection to the server's port (the
// same number as the UDT port; TCP and UDP ports are separate), sends the
// test's parameters, dials -P UDT connections and sends on all of them for
// -t seconds: a byte stream, or with -msg in message mode, where each
// write is one reliable, in-order message of that size. It prints one line
// a second (the goodput the server acknowledged, aggregate and per stream,
// retransmitted packets and RTT) and a summary with what the server
// received, the retransmissions, and the CPU seconds per GB on both sides;
// -json prints the same as one JSON object per line.
//
// With -trace, each end writes the trace of each of its UDT connections to
// a file of its own in dir (created if need be), in the format of the
// package trace (docs/trace-format.md); examples/udttrace charts them.
// -trace-packets=false leaves out the lines of the data packets, most of
// a file's (about 70 bytes a packet), for long or fast runs. The C++
// udtperf has no -trace.
//
// internal/interop/cpeer/udtperf.cpp is the same tool built on the C++
// library (libudt 4.11), with the same flags, control protocol and output:
// either client works with either server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/trace"
)

// Flag defaults and limits, the same in the C++ udtperf.
const (
	defaultPort    = 5201
	defaultSecs    = 10
	defaultMSS     = 1500
	maxSecs        = 86400
	maxStreams     = 128
	minMSS         = 76
	maxMSS         = 65536
	maxMessageSize = 8 << 20
)

// options are the parsed command line.
type options struct {
	server  bool
	host    string // client: the server's host
	port    int
	secs    float64
	streams int
	mss     int
	msg     int // message size; 0 for stream mode
	json    bool
	// transport: carry UDT through a udt.Transport on sockets udtperf
	// opens (see useTransport).
	transport bool
	// trace is the directory for the connections' traces ("": none);
	// tracePackets keeps their data packets.
	trace        string
	tracePackets bool
}

// clientFlags are the flags that only make sense for a client.
var clientFlags = []string{"t", "P", "mss", "msg"}

// parseArgs parses the command line (without the program name). Its errors
// name the flag at fault.
func parseArgs(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("udtperf", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&o.server, "s", false, "run as the server")
	fs.StringVar(&o.host, "c", "", "run as a client of the server at `host`")
	fs.IntVar(&o.port, "p", defaultPort, "TCP control and UDT data `port`")
	fs.Float64Var(&o.secs, "t", defaultSecs, "client: send for this many `seconds`")
	fs.IntVar(&o.streams, "P", 1, "client: parallel UDT connections")
	fs.IntVar(&o.mss, "mss", defaultMSS, "client: UDT MSS in bytes, IP and UDP headers included")
	fs.IntVar(&o.msg, "msg", 0, "client: message mode, messages of this `size` in bytes (0: stream mode)")
	fs.BoolVar(&o.json, "json", false, "print JSON, one object per line")
	fs.BoolVar(&o.transport, "transport", false, "open the UDP sockets here and carry UDT through a udt.Transport (reported as gotr)")
	fs.StringVar(&o.trace, "trace", "", "write a trace of each UDT connection into `dir`")
	fs.BoolVar(&o.tracePackets, "trace-packets", true, "with -trace, keep each data packet's event")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case o.server && set["c"]:
		return o, errors.New("-s and -c cannot be used together")
	case !o.server && !set["c"]:
		return o, errors.New("one of -s (server) or -c host (client) is needed")
	case set["c"] && o.host == "":
		return o, errors.New("-c needs a host")
	case set["trace-packets"] && o.trace == "":
		return o, errors.New("-trace-packets needs -trace")
	}
	if o.server {
		for _, name := range clientFlags {
			if set[name] {
				return o, fmt.Errorf("-%s is a client flag; the client sends it to the server", name)
			}
		}
	}
	minPort := 1
	if o.server {
		minPort = 0 // any free port, printed at start
	}
	switch {
	case o.port < minPort || o.port > 65535:
		return o, fmt.Errorf("-p %d: port must be %d to 65535", o.port, minPort)
	case !(o.secs > 0 && o.secs <= maxSecs):
		return o, fmt.Errorf("-t %g: seconds must be more than 0 and at most %d", o.secs, maxSecs)
	case o.streams < 1 || o.streams > maxStreams:
		return o, fmt.Errorf("-P %d: streams must be 1 to %d", o.streams, maxStreams)
	case o.mss < minMSS || o.mss > maxMSS:
		return o, fmt.Errorf("-mss %d: MSS must be %d to %d", o.mss, minMSS, maxMSS)
	case o.msg < 0 || o.msg > maxMessageSize:
		return o, fmt.Errorf("-msg %d: message size must be 0 (stream mode) to %d", o.msg, maxMessageSize)
	}
	return o, nil
}

func main() { os.Exit(run()) }

// run runs udtperf and returns its exit status.
func run() int {
	o, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "udtperf: %v\n", err)
		fmt.Fprintln(os.Stderr, "usage: udtperf -s [-p port] [-json] [-transport] [-trace dir [-trace-packets=false]]")
		fmt.Fprintln(os.Stderr, "       udtperf -c host [-p port] [-t secs] [-P streams] [-mss n] [-msg size] [-json] [-transport] [-trace dir [-trace-packets=false]]")
		return 2
	}
	if o.transport {
		useTransport, impl = true, "gotr"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := openTrace(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "udtperf: %v\n", err)
		return 1
	}
	err = runRole(ctx, o, newOutput(os.Stdout, o.json), tracerOf(dir))
	if dir != nil {
		// After the connections: their traces are complete.
		if cerr := dir.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "udtperf: %v\n", err)
		return 1
	}
	return 0
}

// runRole runs the server or the client o asks for.
func runRole(ctx context.Context, o options, out *output, tracer func(udt.TraceInfo) *udt.ConnTracer) error {
	if !o.server {
		_, err := runClient(ctx, o, out, tracer)
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(o.port)))
	if err != nil {
		return err
	}
	return serve(ctx, ln, out, tracer)
}

// openTrace makes -trace's directory, nil without -trace.
func openTrace(o options) (*trace.Dir, error) {
	if o.trace == "" {
		return nil, nil
	}
	return trace.NewDir(o.trace, trace.Options{NoPackets: !o.tracePackets})
}

// tracerOf is the Config.Tracer that writes into dir; nil if dir is.
func tracerOf(dir *trace.Dir) func(udt.TraceInfo) *udt.ConnTracer {
	if dir == nil {
		return nil
	}
	return dir.Tracer
}
