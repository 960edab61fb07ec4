package trace

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
)

const testHeader = `{"format":"udt-trace/1","role":"server","socket_id":7,"local":"a","remote":"b","start":"2026-01-02T15:04:05.5Z"}` + "\n"

// TestReadErrors: a file of another format is refused as such; a
// malformed line is named by its number, after the events before it.
func TestReadErrors(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
		format         bool // matches ErrFormat
		events         int  // read before the error
	}{
		{name: "empty", in: "", want: "the file is empty", format: true},
		{name: "blank", in: "\n \n", want: "the file is empty", format: true},
		{name: "not JSON", in: "hello\n", want: "trace: not a udt-trace/1 file: its first line is not a header", format: true},
		{name: "JSON, no format", in: `{"role":"client"}`, want: "its first line is not a header", format: true},
		{name: "other format", in: `{"format":"qlog/0.3"}`, want: `trace: not a udt-trace/1 file: its format is "qlog/0.3"`, format: true},
		{name: "header too long", in: strings.Repeat(" ", maxLine) + testHeader, want: "not a udt-trace/1 file: its first line: longer than", format: true},
		{name: "bad role", in: strings.Replace(testHeader, "server", "boss", 1), want: `line 1: header: unknown role "boss"`},
		{name: "bad start", in: strings.Replace(testHeader, "2026-01-02T", "2026-13-02T", 1), want: "line 1: header: start:"},
		{name: "start beyond UTC's years", in: strings.Replace(testHeader, "2026-01-02T15:04:05.5Z", "0000-01-01T00:00:00+01:00", 1),
			want: "out of range in UTC"},
		{name: "cut short", in: testHeader + `{"t":1,"ev":"timeout"}` + "\n\n" + `{"t":2,"ev":"time`, want: "trace: line 4: unexpected end of JSON input", events: 1},
		{name: "unknown event", in: testHeader + `{"t":1,"ev":"party"}`, want: `line 2: unknown event "party"`},
		{name: "no ev", in: testHeader + `{"t":1}`, want: `line 2: no "ev"`},
		{name: "no t", in: testHeader + `{"ev":"timeout"}`, want: `line 2: no "t"`},
		{name: "t a float", in: testHeader + `{"t":1.5,"ev":"timeout"}`, want: "line 2: json: cannot unmarshal number 1.5"},
		{name: "t out of range", in: testHeader + `{"t":9223372036854776,"ev":"timeout"}`, want: "line 2: t: 9223372036854776 µs is out of range"},
		{name: "seq beyond 32 bits", in: testHeader + `{"t":1,"ev":"packet_sent","seq":4294967296}`, want: "line 2: json: cannot unmarshal number 4294967296"},
		{name: "bad phase", in: testHeader + `{"t":1,"ev":"phase","from":"connected","to":"gone"}`, want: `line 2: to: unknown phase "gone"`},
		{name: "phase without from", in: testHeader + `{"t":1,"ev":"phase","to":"closed"}`, want: `line 2: from: unknown phase ""`},
		{name: "bad socket type", in: testHeader + `{"t":1,"ev":"handshake_sent","socket_type":"raw"}`, want: `line 2: unknown socket_type "raw"`},
		{name: "loss range of 3", in: testHeader + `{"t":1,"ev":"control_sent","type":"nak","loss":[[1,2],[3,4,5]]}`, want: "line 2: loss: range 1 has 3 numbers, want 2"},
		{name: "line too long", in: testHeader + `{"t":1,"ev":"closed","error":"` + strings.Repeat("x", maxLine) + "\"}\n", want: "line 2: longer than 1048576 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, err := Read(strings.NewReader(c.in))
			require.ErrorContains(t, err, c.want)
			require.Equal(t, c.format, errors.Is(err, ErrFormat), "%v", err)
			if c.events > 0 {
				require.NotNil(t, tr)
				require.Len(t, tr.Events, c.events)
			}
		})
	}
}

// TestReadLenient: blank lines, unknown keys and a role-less header are
// read; a Reader goes on past a malformed line, and past one too long.
func TestReadLenient(t *testing.T) {
	in := strings.Replace(testHeader, "server", "unknown", 1) +
		"\n" + `{"t":-5,"ev":"timeout","count":1,"future_field":{"a":[1]}}` + "\r\n" +
		`{"t":1,"ev":"bogus"}` + "\n" + strings.Repeat("x", 3*maxLine) + "\n" + `{"t":6,"ev":"closed","by":"peer"}`
	r, err := NewReader(strings.NewReader(in))
	require.NoError(t, err)
	require.Equal(t, udt.TraceRole(0), r.Header().Role)
	e, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, Event{T: -5000, Kind: Timeout, Count: 1}, e)
	for _, line := range []int{4, 5} {
		_, err = r.Next()
		var le *LineError
		require.ErrorAs(t, err, &le)
		require.Equal(t, line, le.Line)
	}
	e, err = r.Next()
	require.NoError(t, err)
	require.Equal(t, "peer", e.By)
	_, err = r.Next()
	require.ErrorIs(t, err, io.EOF)
}

func TestReadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(testHeader+`{"t":1,"ev":"nope"}`), 0o644))
	_, err := ReadFile(path)
	require.ErrorContains(t, err, path+": trace: line 2")
	_, err = ReadFile(filepath.Join(t.TempDir(), "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// strAddr is an address read back from a header.
type strAddr string

func (a strAddr) Network() string { return "udp" }
func (a strAddr) String() string  { return string(a) }

// encode writes tr back as the Writer would have written it.
func encode(tr *Trace) []byte {
	h := tr.Header
	info := udt.TraceInfo{Role: h.Role, SocketID: h.SocketID, LocalAddr: strAddr(h.Local),
		RemoteAddr: strAddr(h.Remote), Start: h.Start}
	b := appendHeader(nil, info, Options{NoPackets: h.NoPackets})
	for i := range tr.Events {
		b = appendEvent(b, &tr.Events[i])
	}
	return b
}

// FuzzRead reads anything without a panic; what it reads, written back
// and read again, gives the same events and the same text. (A line may
// carry keys its kind does not have, which the writer leaves out, so the
// first reading is compared after one round.)
func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf, testInfo, Options{})
	callEvery(w.Tracer())
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(testHeader + `{"t":1,"ev":"metrics","from":"closed","seq":3,"loss":[[1,2]]}`))
	f.Add([]byte(testHeader + `{"t":-1,"ev":"phase","from":"connecting","to":"closing"}` + "\n" + `{"t":2,"ev":"`))
	f.Add([]byte(`{"format":"udt-trace/1","role":"rendezvous","start":"2026-01-02T15:04:05+02:00","no_packets":true}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := Read(bytes.NewReader(in))
		if tr == nil {
			require.Error(t, err)
			return
		}
		once := encode(tr)
		tr2, err := Read(bytes.NewReader(once))
		require.NoError(t, err, "written:\n%s", once)
		require.Equal(t, string(once), string(encode(tr2)))
		require.Len(t, tr2.Events, len(tr.Events))
	})
}
