// Command udttrace charts UDT connection traces: the files the package
// trace writes (udtperf -trace, or a program's own Config.Tracer).
//
//	udttrace [-o out.html] [-bin 100ms] FILE...
//
// It writes one HTML page, self-contained and without JavaScript, of SVG
// charts over one time axis: the files' events are placed by their
// headers' start times (from different hosts, as far as their clocks
// agree). Give it the two ends of one connection to see both sides:
//
//   - throughput: payload sent, retransmitted, and taken by the receiver
//     (goodput), per time bin;
//   - the sender's pacing: the rate its packet period allows, beside the
//     receiver's arrival rate and link capacity estimates;
//   - the sender's congestion window, the peer's flow window and the
//     packets in flight;
//   - the RTT, with a band of RTT ± RTTVar;
//   - retransmissions and packets declared lost (nak, timeout, stall, gap)
//     per bin, and the EXP timeouts.
//
// A table above them sums each file up. Lines of a file that cannot be
// read are skipped, and counted there.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run runs udttrace with args and returns its exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("udttrace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "udttrace.html", "write the page to `file`")
	binW := fs.Duration("bin", 100*time.Millisecond, "the time bin of rates and counts")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: udttrace [-o out.html] [-bin 100ms] FILE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 || *binW <= 0 {
		if *binW <= 0 {
			fmt.Fprintf(stderr, "udttrace: -bin %v: must be more than 0\n", *binW)
		}
		fs.Usage()
		return 2
	}
	page, ends, err := render(fs.Args(), *binW)
	if err == nil {
		err = os.WriteFile(*out, page, 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "udttrace: %v\n", err)
		return 1
	}
	for _, d := range ends {
		if d.bad > 0 {
			fmt.Fprintf(stderr, "udttrace: %s: %d lines skipped; the first: %v\n", d.path, d.bad, d.badErr)
		}
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return 0
}

// render reads the trace files at paths and returns the page.
func render(paths []string, binW time.Duration) ([]byte, []*end, error) {
	ends, readers, files, err := openEnds(paths, binW)
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if err != nil {
		return nil, nil, err
	}
	xMax := 0.0
	for i, d := range ends {
		if err := d.readEvents(readers[i]); err != nil {
			return nil, nil, err
		}
		if d.overBins {
			return nil, nil, fmt.Errorf("%s: -bin %v makes more than %d bins of its %v: take a larger one",
				d.path, binW, maxBins, d.last.Round(time.Millisecond))
		}
		xMax = max(xMax, d.last.Seconds(), float64(len(d.bins))*binW.Seconds())
	}
	page, err := writePage(ends, charts(ends, binW, xMax))
	return page, ends, err
}
