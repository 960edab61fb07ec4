// Command summarize reads the JSON output of udtperf clients (one file per
// run, as bench/compare.sh writes them) and prints, for each pair of client
// and server implementations, the median, least and greatest goodput,
// messages a second (in message mode), CPU seconds per GB on each side and
// retransmissions, then the Go/C++ ratios of the medians.
//
//	go run ./bench/summarize FILE...
//
// A file is named CLIENT-SERVER.RUN.json (go-cpp.3.json); one without a
// summary line counts as a failed run of the pair its name gives.
//
// Files named ceiling.RUN.json hold the output of bench/udpceiling -json:
// raw UDP over the same loopback, one line per mode. With them it prints
// the ceiling too, per mode, and each pair's median goodput as a share of
// the median ceiling of GSO+GRO and of sendmmsg/recvmmsg.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// summary holds the fields of udtperf's final JSON object used here.
type summary struct {
	Type           string  `json:"type"`
	Client         string  `json:"client"`
	Server         string  `json:"server"`
	Mode           string  `json:"mode"`
	Streams        int     `json:"streams"`
	MSS            int     `json:"mss"`
	MsgSize        int     `json:"msg_size"`
	Secs           float64 `json:"secs"`
	Bytes          int64   `json:"bytes"`
	BytesSent      int64   `json:"bytes_sent"`
	GoodputMbps    float64 `json:"goodput_mbps"`
	MsgsPerSec     float64 `json:"msgs_per_s"`
	Retrans        int64   `json:"retrans"`
	ClientCPUPerGB float64 `json:"client_cpu_s_per_gb"`
	ServerCPUPerGB float64 `json:"server_cpu_s_per_gb"`
	Fairness       float64 `json:"fairness"`
}

// ceiling holds the fields of one line of bench/udpceiling -json.
type ceiling struct {
	Type        string  `json:"type"` // "ceiling"
	Mode        string  `json:"mode"` // "plain", "mmsg" or "gso"
	Size        int     `json:"size"`
	T           float64 `json:"t"` // seconds a mode
	GoodputMbps float64 `json:"goodput_mbps"`
	DgramsPerS  float64 `json:"dgrams_per_s"`
	CPUPerGB    float64 `json:"cpu_s_per_gb"`
	Error       string  `json:"error"`
}

// ceilingModes in the order they are printed, and their labels.
var ceilingModes = []struct{ mode, label string }{
	{"plain", "plain"},
	{"mmsg", "mmsg"},
	{"gso", "gso+gro"},
}

// pairs in the order they are printed.
var pairs = []string{"go-go", "cpp-cpp", "go-cpp", "cpp-go", "gotr-gotr"}

var names = map[string]string{"go": "Go", "cpp": "C++", "gotr": "GoT"}

func pairName(p string) string {
	c, s, _ := strings.Cut(p, "-")
	return names[c] + " -> " + names[s]
}

// results are the runs of one pair.
type results struct {
	runs   []summary
	failed []string // files without a summary
}

// ceilings are the runs of one mode of bench/udpceiling.
type ceilings struct {
	runs   []ceiling
	failed []string // the errors of runs that failed
}

// loaded is what the files hold: the runs of each pair and of each
// ceiling mode.
type loaded struct {
	pairs   map[string]*results
	ceiling map[string]*ceilings
}

// readRun returns the summary in a client's output, if there is one.
func readRun(r io.Reader) (summary, bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var s summary
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return s, false, fmt.Errorf("bad line %q: %w", sc.Text(), err)
		}
		if s.Type == "summary" {
			return s, true, nil
		}
	}
	return summary{}, false, sc.Err()
}

// pairOf is the pair a file's name gives: go-cpp.3.json is "go-cpp".
func pairOf(path string) string {
	base, _, _ := strings.Cut(filepath.Base(path), ".")
	return base
}

// readCeiling returns the lines of a bench/udpceiling -json output.
func readCeiling(r io.Reader) ([]ceiling, error) {
	var out []ceiling
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var c ceiling
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("bad line %q: %w", sc.Text(), err)
		}
		if c.Type == "ceiling" {
			out = append(out, c)
		}
	}
	return out, sc.Err()
}

func load(files []string) (*loaded, error) {
	all := &loaded{pairs: map[string]*results{}, ceiling: map[string]*ceilings{}}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		if pairOf(f) == "ceiling" {
			cs, err := readCeiling(fh)
			fh.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			for _, c := range cs {
				r := all.ceiling[c.Mode]
				if r == nil {
					r = &ceilings{}
					all.ceiling[c.Mode] = r
				}
				if c.Error == "" && c.GoodputMbps > 0 {
					r.runs = append(r.runs, c)
				} else {
					r.failed = append(r.failed, c.Error)
				}
			}
			continue
		}
		s, ok, err := readRun(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		p := pairOf(f)
		if ok {
			p = s.Client + "-" + s.Server
		}
		if !slices.Contains(pairs, p) {
			return nil, fmt.Errorf("%s: unknown pair %q", f, p)
		}
		r := all.pairs[p]
		if r == nil {
			r = &results{}
			all.pairs[p] = r
		}
		if ok && s.Bytes > 0 {
			r.runs = append(r.runs, s)
		} else {
			r.failed = append(r.failed, filepath.Base(f))
		}
	}
	return all, nil
}

// stat is the median, least and greatest of some values.
type stat struct{ med, lo, hi float64 }

func stats(v []float64) stat {
	if len(v) == 0 {
		return stat{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return stat{med, s[0], s[n-1]}
}

func of(runs []summary, f func(summary) float64) stat {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	return stats(v)
}

func (s stat) format(prec int) string {
	return fmt.Sprintf("%.*f (%.*f-%.*f)", prec, s.med, prec, s.lo, prec, s.hi)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func report(w io.Writer, data *loaded) error {
	all := data.pairs
	var first *summary
	for _, p := range pairs {
		if r := all[p]; r != nil && len(r.runs) > 0 {
			first = &r.runs[0]
			break
		}
	}
	if first == nil {
		return fmt.Errorf("no run finished")
	}
	message := first.MsgSize > 0
	mode := "stream"
	if message {
		mode = fmt.Sprintf("message mode, %d B messages", first.MsgSize)
	}
	fmt.Fprintf(w, "udtperf over loopback: %s, %d stream(s), MSS %d, %g s a run\n\n", mode, first.Streams, first.MSS, first.Secs)

	head := fmt.Sprintf("%-12s %4s  %-28s", "pair", "runs", "goodput Mbit/s med (min-max)")
	if message {
		head += fmt.Sprintf("  %-28s", "msgs/s med (min-max)")
	}
	head += fmt.Sprintf("  %-22s  %-22s  %-22s", "client CPU-s/GB", "server CPU-s/GB", "retrans (pkts)")
	streams := first.Streams > 1
	if streams {
		// The least stream's goodput over the greatest's, per run.
		head += fmt.Sprintf("  %-22s", "least/most stream")
	}
	fmt.Fprintln(w, strings.TrimRight(head, " "))
	med := map[string]struct{ good, cpu, msgs float64 }{}
	for _, p := range pairs {
		r := all[p]
		if r == nil {
			continue
		}
		runs := r.runs
		line := fmt.Sprintf("%-12s %4d", pairName(p), len(runs))
		if len(runs) == 0 {
			fmt.Fprintf(w, "%s  all %d failed: %s\n", line, len(r.failed), strings.Join(r.failed, " "))
			continue
		}
		good := of(runs, func(s summary) float64 { return s.GoodputMbps })
		msgs := of(runs, func(s summary) float64 { return s.MsgsPerSec })
		ccpu := of(runs, func(s summary) float64 { return s.ClientCPUPerGB })
		scpu := of(runs, func(s summary) float64 { return s.ServerCPUPerGB })
		both := of(runs, func(s summary) float64 { return s.ClientCPUPerGB + s.ServerCPUPerGB })
		retr := of(runs, func(s summary) float64 { return float64(s.Retrans) })
		line += fmt.Sprintf("  %-28s", good.format(1))
		if message {
			line += fmt.Sprintf("  %-28s", msgs.format(0))
		}
		line += fmt.Sprintf("  %-22s  %-22s  %-22s", ccpu.format(2), scpu.format(2), retr.format(0))
		if streams {
			line += fmt.Sprintf("  %-22s", of(runs, func(s summary) float64 { return s.Fairness }).format(2))
		}
		if len(r.failed) > 0 {
			line += fmt.Sprintf("  (%d failed: %s)", len(r.failed), strings.Join(r.failed, " "))
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
		med[p] = struct{ good, cpu, msgs float64 }{good.med, both.med, msgs.med}
	}

	head = fmt.Sprintf("%-61s  %-8s  %-26s", "ratios Go / C++ of the medians", "goodput", "CPU-s/GB sender+receiver")
	if message {
		head += "  msgs/s"
	}
	fmt.Fprintf(w, "\n%s\n", strings.TrimRight(head, " "))
	for _, c := range []struct{ label, goPair string }{
		{"both ends (Go -> Go / C++ -> C++)", "go-go"},
		{"Go sender (Go -> C++ / C++ -> C++)", "go-cpp"},
		{"Go receiver (C++ -> Go / C++ -> C++)", "cpp-go"},
	} {
		g, okG := med[c.goPair]
		b, okB := med["cpp-cpp"]
		if !okG || !okB {
			continue
		}
		line := fmt.Sprintf("%-61s  %-8s  %-26s", c.label, ratio(g.good, b.good), ratio(g.cpu, b.cpu))
		if message {
			line += "  " + ratio(g.msgs, b.msgs)
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	// Through a udt.Transport (GoT, udtperf -transport) against the
	// package-level Dial and Listen.
	if tr, okT := med["gotr-gotr"]; okT {
		if g, okG := med["go-go"]; okG {
			line := fmt.Sprintf("%-61s  %-8s  %-26s", "Transport (GoT -> GoT / Go -> Go)", ratio(tr.good, g.good), ratio(tr.cpu, g.cpu))
			if message {
				line += "  " + ratio(tr.msgs, g.msgs)
			}
			fmt.Fprintln(w, strings.TrimRight(line, " "))
		}
	}
	good := map[string]float64{}
	for p, m := range med {
		good[p] = m.good
	}
	reportCeiling(w, data.ceiling, good)
	return nil
}

// reportCeiling prints the raw UDP ceiling per mode, and each pair's
// median goodput (good) as a share of the ceilings' medians.
func reportCeiling(w io.Writer, all map[string]*ceilings, good map[string]float64) {
	var first *ceiling
	for _, m := range ceilingModes {
		if r := all[m.mode]; r != nil && len(r.runs) > 0 {
			first = &r.runs[0]
			break
		}
	}
	if first == nil {
		for _, m := range ceilingModes {
			if r := all[m.mode]; r != nil {
				fmt.Fprintf(w, "\nraw UDP ceiling %s: all %d failed: %s\n", m.label, len(r.failed), strings.Join(r.failed, "; "))
			}
		}
		return
	}
	fmt.Fprintf(w, "\nraw UDP over loopback (bench/udpceiling): %d B datagrams, %g s a mode, one sender and one receiver\n\n", first.Size, first.T)
	head := fmt.Sprintf("%-12s %4s  %-31s  %-28s  %-22s", "mode", "runs", "goodput Mbit/s med (min-max)", "datagrams/s med (min-max)", "CPU-s/GB both ends")
	fmt.Fprintln(w, strings.TrimRight(head, " "))
	ceil := map[string]float64{}
	for _, m := range ceilingModes {
		r := all[m.mode]
		if r == nil {
			continue
		}
		line := fmt.Sprintf("%-12s %4d", m.label, len(r.runs))
		if len(r.runs) == 0 {
			fmt.Fprintf(w, "%s  all %d failed: %s\n", line, len(r.failed), strings.Join(r.failed, "; "))
			continue
		}
		g := ofCeiling(r.runs, func(c ceiling) float64 { return c.GoodputMbps })
		d := ofCeiling(r.runs, func(c ceiling) float64 { return c.DgramsPerS })
		cpu := ofCeiling(r.runs, func(c ceiling) float64 { return c.CPUPerGB })
		line += fmt.Sprintf("  %-31s  %-28s  %-22s", g.format(1), d.format(0), cpu.format(2))
		if len(r.failed) > 0 {
			line += fmt.Sprintf("  (%d failed)", len(r.failed))
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
		ceil[m.mode] = g.med
	}

	gso, okG := ceil["gso"]
	mm, okM := ceil["mmsg"]
	if !okG && !okM {
		return
	}
	fmt.Fprintf(w, "\n%-61s  %-9s  %s\n", "share of the ceiling: median goodput / median raw UDP", "gso+gro", "mmsg")
	for _, p := range pairs {
		g, ok := good[p]
		if !ok {
			continue
		}
		line := fmt.Sprintf("%-61s  %-9s  %s", pairName(p), share(g, gso, okG), share(g, mm, okM))
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	// A UDT data packet's header is part of the datagram's payload.
	fmt.Fprintf(w, "(a data packet's 16-byte UDT header counts in raw UDP's payload, not in goodput: at most %.3f)\n",
		float64(first.Size-16)/float64(first.Size))
}

func share(a, b float64, ok bool) string {
	if !ok {
		return "-"
	}
	return ratio(a, b)
}

func ofCeiling(runs []ceiling, f func(ceiling) float64) stat {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	return stats(v)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: summarize FILE...")
		os.Exit(2)
	}
	all, err := load(os.Args[1:])
	if err == nil {
		err = report(os.Stdout, all)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "summarize:", err)
		os.Exit(1)
	}
}
