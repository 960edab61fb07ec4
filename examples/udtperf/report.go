package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
)

// The reports, as JSON objects (one per line with -json) and as text. The
// C++ udtperf prints the same fields and lines.

// startReport opens a client's output.
type startReport struct {
	Type    string  `json:"type"` // "start"
	Client  string  `json:"client"`
	Server  string  `json:"server"`
	Host    string  `json:"host"`
	Port    int     `json:"port"`
	Mode    string  `json:"mode"` // "stream" or "message"
	Streams int     `json:"streams"`
	MSS     int     `json:"mss"`
	MsgSize int     `json:"msg_size"`
	Secs    float64 `json:"secs"`
}

// intervalReport is one second of a client's test. Goodput is the payload
// the receiver acknowledged in it.
type intervalReport struct {
	Type          string    `json:"type"` // "interval"
	Start         float64   `json:"start"`
	End           float64   `json:"end"`
	GoodputMbps   float64   `json:"goodput_mbps"`
	StreamGoodput []float64 `json:"stream_goodput_mbps"`
	Retrans       int64     `json:"retrans"`
	RTTms         float64   `json:"rtt_ms"`
}

// summary is a client's final report. Bytes, messages, durations and the
// goodput are the server's; retransmissions and RTT the client's senders'.
type summary struct {
	Type           string    `json:"type"` // "summary"
	Client         string    `json:"client"`
	Server         string    `json:"server"`
	Mode           string    `json:"mode"`
	Streams        int       `json:"streams"`
	MSS            int       `json:"mss"`
	MsgSize        int       `json:"msg_size"`
	Secs           float64   `json:"secs"`
	Duration       float64   `json:"duration_s"`
	Bytes          int64     `json:"bytes"`
	BytesSent      int64     `json:"bytes_sent"`
	GoodputMbps    float64   `json:"goodput_mbps"`
	Messages       int64     `json:"messages"`
	MessagesSent   int64     `json:"messages_sent"`
	MsgsPerSec     float64   `json:"msgs_per_s"`
	Retrans        int64     `json:"retrans"`
	RTTms          float64   `json:"rtt_ms"`
	ClientCPU      float64   `json:"client_cpu_s"`
	ServerCPU      float64   `json:"server_cpu_s"`
	ClientCPUPerGB float64   `json:"client_cpu_s_per_gb"`
	ServerCPUPerGB float64   `json:"server_cpu_s_per_gb"`
	StreamBytes    []int64   `json:"stream_bytes"`
	StreamGoodput  []float64 `json:"stream_goodput_mbps"`
	Fairness       float64   `json:"fairness"` // least stream bytes / most
}

// listeningReport opens a server's output.
type listeningReport struct {
	Type string `json:"type"` // "listening"
	Impl string `json:"impl"`
	Port int    `json:"port"`
}

// serverTestReport is the server's line for one test.
type serverTestReport struct {
	Type        string  `json:"type"` // "test"
	Peer        string  `json:"peer"`
	Client      string  `json:"client"`
	Mode        string  `json:"mode"`
	Streams     int     `json:"streams"`
	Duration    float64 `json:"duration_s"`
	Bytes       int64   `json:"bytes"`
	Messages    int64   `json:"messages"`
	GoodputMbps float64 `json:"goodput_mbps"`
	MsgsPerSec  float64 `json:"msgs_per_s"`
	CPU         float64 `json:"cpu_s"`
	CPUPerGB    float64 `json:"cpu_s_per_gb"`
}

// errorReport is a server's line for a test that failed.
type errorReport struct {
	Type  string `json:"type"` // "error"
	Peer  string `json:"peer"`
	Error string `json:"error"`
}

// output prints reports as text or JSON lines. It is safe for concurrent
// use; each report is written whole.
type output struct {
	mu   sync.Mutex
	w    io.Writer // guarded by mu
	json bool
}

func newOutput(w io.Writer, asJSON bool) *output { return &output{w: w, json: asJSON} }

func (o *output) emit(v any, text string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err) // plain structs of numbers and strings
		}
		b = append(b, '\n')
		_, _ = o.w.Write(b)
		return
	}
	_, _ = io.WriteString(o.w, text)
}

func modeName(msg int) string {
	if msg > 0 {
		return "message"
	}
	return "stream"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

func (o *output) start(r startReport) {
	r.Type = "start"
	mode := "stream"
	if r.MsgSize > 0 {
		mode = fmt.Sprintf("message %d B", r.MsgSize)
	}
	o.emit(r, fmt.Sprintf("udtperf client (%s) to %s port %d, server %s: %s, %s, MSS %d, %g s\n",
		r.Client, r.Host, r.Port, r.Server, mode, plural(r.Streams, "stream", "streams"), r.MSS, r.Secs))
}

func (o *output) interval(r intervalReport) {
	r.Type = "interval"
	r.GoodputMbps = round3(r.GoodputMbps)
	r.RTTms = round3(r.RTTms)
	for i := range r.StreamGoodput {
		r.StreamGoodput[i] = round3(r.StreamGoodput[i])
	}
	text := fmt.Sprintf("[%6.2f-%6.2f s] %10.3f Mbit/s  retr %7d  rtt %8.3f ms", r.Start, r.End, r.GoodputMbps, r.Retrans, r.RTTms)
	if len(r.StreamGoodput) > 1 {
		text += "  streams" + joinFloats(r.StreamGoodput)
	}
	o.emit(r, text+"\n")
}

func (o *output) summary(s summary) {
	s.Type = "summary"
	for _, p := range []*float64{&s.GoodputMbps, &s.MsgsPerSec, &s.RTTms, &s.ClientCPUPerGB, &s.ServerCPUPerGB, &s.Fairness} {
		*p = round3(*p)
	}
	for _, p := range []*float64{&s.Duration, &s.ClientCPU, &s.ServerCPU} {
		*p = round6(*p)
	}
	for i := range s.StreamGoodput {
		s.StreamGoodput[i] = round3(s.StreamGoodput[i])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "- - - - - - - - - - - - - - - - - - - - - - - -\n")
	fmt.Fprintf(&b, "duration   %.3f s\n", s.Duration)
	fmt.Fprintf(&b, "received   %d bytes by the server (%d sent)\n", s.Bytes, s.BytesSent)
	fmt.Fprintf(&b, "goodput    %.3f Mbit/s\n", s.GoodputMbps)
	if s.MsgSize > 0 {
		fmt.Fprintf(&b, "messages   %d received (%d sent), %.3f msgs/s\n", s.Messages, s.MessagesSent, s.MsgsPerSec)
	}
	fmt.Fprintf(&b, "retrans    %d packets\n", s.Retrans)
	fmt.Fprintf(&b, "rtt        %.3f ms\n", s.RTTms)
	fmt.Fprintf(&b, "cpu        client %s %.3f s (%.3f s/GB), server %s %.3f s (%.3f s/GB)\n",
		s.Client, s.ClientCPU, s.ClientCPUPerGB, s.Server, s.ServerCPU, s.ServerCPUPerGB)
	if s.Streams > 1 {
		fmt.Fprintf(&b, "streams   %s Mbit/s, fairness (min/max) %.3f\n", joinFloats(s.StreamGoodput), s.Fairness)
	}
	o.emit(s, b.String())
}

func (o *output) listening(port int) {
	o.emit(listeningReport{Type: "listening", Impl: impl, Port: port},
		fmt.Sprintf("udtperf server (%s) listening on port %d (TCP control, UDT data)\n", impl, port))
}

func (o *output) serverTest(r serverTestReport) {
	r.Type = "test"
	r.GoodputMbps, r.MsgsPerSec, r.CPUPerGB = round3(r.GoodputMbps), round3(r.MsgsPerSec), round3(r.CPUPerGB)
	r.Duration, r.CPU = round6(r.Duration), round6(r.CPU)
	text := fmt.Sprintf("test from %s (%s): %s, %s, %d bytes in %.3f s, %.3f Mbit/s",
		r.Peer, r.Client, r.Mode, plural(r.Streams, "stream", "streams"), r.Bytes, r.Duration, r.GoodputMbps)
	if r.Mode == "message" {
		text += fmt.Sprintf(", %d msgs, %.3f msgs/s", r.Messages, r.MsgsPerSec)
	}
	text += fmt.Sprintf(", cpu %.3f s (%.3f s/GB)\n", r.CPU, r.CPUPerGB)
	o.emit(r, text)
}

func (o *output) serverError(peer string, err error) {
	o.emit(errorReport{Type: "error", Peer: peer, Error: err.Error()},
		fmt.Sprintf("test from %s failed: %v\n", peer, err))
}

func joinFloats(v []float64) string {
	var b strings.Builder
	for _, x := range v {
		fmt.Fprintf(&b, " %.3f", x)
	}
	return b.String()
}

func round3(x float64) float64 { return math.Round(x*1e3) / 1e3 }
func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// mbps is bytes over secs in Mbit/s, 0 for no time.
func mbps(bytes int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(bytes) * 8 / 1e6 / secs
}

// perGB is CPU seconds per 10^9 bytes, 0 for no bytes.
func perGB(cpu float64, bytes int64) float64 {
	if bytes <= 0 {
		return 0
	}
	return cpu / (float64(bytes) / 1e9)
}
