package udt

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/lossl"
)

// vectorFile is one capture of two C++ 4.11 peers talking (testdata/vectors).
type vectorFile struct {
	Scenario string         `json:"scenario"`
	Packets  []vectorPacket `json:"packets"`
}

type vectorPacket struct {
	Index   int    `json:"index"`
	Hex     string `json:"hex"`
	Decoded struct {
		Kind   string        `json:"kind"`
		Fields []vectorField `json:"fields"`
	} `json:"decoded"`
	Checks map[string]any `json:"checks"`
}

type vectorField struct {
	Offset int             `json:"offset"`
	Len    int             `json:"len"`
	Name   string          `json:"name"`
	Raw    string          `json:"raw"`
	Value  json.RawMessage `json:"value"`
}

func loadVectors(tb testing.TB) map[string]vectorFile {
	tb.Helper()
	files, err := filepath.Glob("testdata/vectors/*.json")
	require.NoError(tb, err)
	require.Len(tb, files, 16)
	out := make(map[string]vectorFile)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(tb, err)
		var v vectorFile
		require.NoError(tb, json.Unmarshal(b, &v), f)
		require.NotEmpty(tb, v.Packets, f)
		out[filepath.Base(f)] = v
	}
	return out
}

// num decodes a field value that is a plain number.
func (f vectorField) num(t *testing.T) int64 {
	var v int64
	require.NoError(t, json.Unmarshal(f.Value, &v), "field %s", f.Name)
	return v
}

func (f vectorField) obj(t *testing.T) map[string]any {
	var v map[string]any
	require.NoError(t, json.Unmarshal(f.Value, &v), "field %s", f.Name)
	return v
}

func TestVectorsRoundTrip(t *testing.T) {
	for name, vf := range loadVectors(t) {
		for _, vp := range vf.Packets {
			t.Run(fmt.Sprintf("%s/%d-%s", strings.TrimSuffix(name, ".json"), vp.Index, vp.Decoded.Kind), func(t *testing.T) {
				wire, err := hex.DecodeString(vp.Hex)
				require.NoError(t, err)
				p, err := parsePacket(wire)
				require.NoError(t, err)
				checkVectorPacket(t, vp, wire, &p)
			})
		}
	}
}

// checkVectorPacket compares p with the annotated fields and re-encodes it
// from the decoded values.
func checkVectorPacket(t *testing.T, vp vectorPacket, wire []byte, p *packet) {
	kind := vp.Decoded.Kind
	var h handshake
	var a ackBody
	var d dropBody
	var nak []lossl.Range
	var body []byte // re-encoded control information
	switch kind {
	case "data":
		require.False(t, p.control)
		body = p.body
	case "handshake":
		require.Equal(t, ctrlHandshake, p.typ)
		var err error
		h, err = parseHandshake(p.body)
		require.NoError(t, err)
		require.Len(t, p.body, hsBodySize)
		body = h.append(nil)
	case "ack-full", "ack-short", "ack-light":
		require.Equal(t, ctrlACK, p.typ)
		var err error
		a, err = parseACK(p.body)
		require.NoError(t, err)
		require.Equal(t, map[string]int{"ack-full": 6, "ack-short": 4, "ack-light": 1}[kind], a.words)
		body = a.append(nil)
	case "nak":
		require.Equal(t, ctrlNAK, p.typ)
		require.NoError(t, lossl.ParseNAK(p.body, func(r lossl.Range) bool {
			nak = append(nak, r)
			return true
		}))
		body = lossl.AppendNAK(nil, nak)
	case "drop-request":
		require.Equal(t, ctrlDropReq, p.typ)
		var err error
		d, err = parseDrop(p.body)
		require.NoError(t, err)
		body = d.append(nil)
	case "ack2", "keep-alive", "shutdown", "error-signal":
		want := map[string]ctrlType{"ack2": ctrlACK2, "keep-alive": ctrlKeepAlive, "shutdown": ctrlShutdown, "error-signal": ctrlError}[kind]
		require.Equal(t, want, p.typ)
		require.Equal(t, zeroPad, p.body, "bodiless types carry a 4-byte zero pad")
		body = nil // appendControl adds the pad
	case "user-defined":
		require.Equal(t, ctrlUser, p.typ)
		body = p.body
	default:
		t.Fatalf("unknown kind %q", kind)
	}

	for _, f := range vp.Decoded.Fields {
		raw := wire[f.Offset : f.Offset+f.Len]
		if f.Raw != "" {
			require.Equal(t, f.Raw, hex.EncodeToString(raw), "raw bytes of %s", f.Name)
		}
		switch f.Name {
		case "flag|seq":
			v := f.obj(t)
			require.EqualValues(t, v["seq"], p.seq)
		case "ff|o|msgno":
			v := f.obj(t)
			require.Equal(t, v["ff"], fmt.Sprintf("%02b", p.pos))
			require.EqualValues(t, v["in_order"], b2i(p.inOrder))
			require.EqualValues(t, v["msgno"], p.msg)
		case "flag|type|extended_type":
			v := f.obj(t)
			require.EqualValues(t, 1, v["flag"])
			require.EqualValues(t, v["type"], p.typ)
			require.EqualValues(t, v["extended_type"], p.ext)
		case "additional_info":
			require.Equal(t, uint32(f.num(t)), p.info)
		case "timestamp_us":
			require.Equal(t, uint32(f.num(t)), p.ts)
		case "dst_socket_id":
			require.Equal(t, uint32(f.num(t)), p.dst)
		case "payload":
			require.EqualValues(t, f.obj(t)["len"], len(p.body))
		case "version":
			require.Equal(t, uint32(f.num(t)), h.version)
		case "socket_type":
			require.Equal(t, uint32(f.num(t)), h.sockType)
		case "isn":
			require.Equal(t, uint32(f.num(t)), h.isn)
		case "mss":
			require.Equal(t, uint32(f.num(t)), h.mss)
		case "flow_window":
			require.Equal(t, uint32(f.num(t)), h.window)
		case "request_type":
			require.Equal(t, int32(f.num(t)), h.reqType)
		case "socket_id":
			require.Equal(t, uint32(f.num(t)), h.socketID)
		case "cookie":
			require.Equal(t, uint32(f.num(t)), h.cookie)
		case "peer_ip":
			v := f.obj(t)
			ip := peerIPAddr(h.peerIP)
			if s, ok := v["as_ipv4"].(string); ok {
				require.Equal(t, s, ip.String())
			}
			if s, ok := v["as_ipv6"].(string); ok {
				require.Equal(t, s, ip.String())
			}
			var round [16]byte
			putPeerIP(&round, ip)
			require.Equal(t, h.peerIP, round, "peer IP re-encodes")
		case "ack_seq":
			require.Equal(t, uint32(f.num(t)), uint32(a.ack))
		case "rtt_us":
			require.Equal(t, uint32(f.num(t)), a.rtt)
		case "rtt_var_us":
			require.Equal(t, uint32(f.num(t)), a.rttVar)
		case "avail_buffer_pkts":
			require.Equal(t, uint32(f.num(t)), a.avail)
		case "recv_rate_pps":
			require.Equal(t, uint32(f.num(t)), a.rate)
		case "capacity_pps":
			require.Equal(t, uint32(f.num(t)), a.bandwidth)
		case "first_seq":
			require.Equal(t, uint32(f.num(t)), uint32(d.first))
		case "last_seq":
			require.Equal(t, uint32(f.num(t)), uint32(d.last))
		case "single", "range_first", "range_last":
			// Checked through the NAK round trip below; the word itself:
			w := binary.BigEndian.Uint32(raw)
			if f.Name == "range_first" {
				require.NotZero(t, w&0x80000000)
			} else {
				require.Zero(t, w&0x80000000)
			}
		case "pad", "body_word_0", "body_word_1", "body_word_2":
			// Raw bytes compared above.
		default:
			t.Fatalf("field %s not checked", f.Name)
		}
	}

	// Re-encode from the decoded values.
	var out []byte
	if p.control {
		out = appendControl(nil, p.typ, p.info, p.dst, body)
		binary.BigEndian.PutUint32(out, binary.BigEndian.Uint32(out)|uint32(p.ext))
		binary.BigEndian.PutUint32(out[8:], p.ts)
	} else {
		out = p.append(nil)
	}
	require.Equal(t, hex.EncodeToString(wire), hex.EncodeToString(out), "re-encoded bytes")

	// The C++ library's cookie: MD5 of "host:port:minutes", first four
	// digest bytes read as a little-endian int.
	if in, ok := vp.Checks["cookie_equals_md5_of"].(string); ok {
		s := strings.Fields(in)[0]
		sum := md5.Sum([]byte(s))
		require.Equal(t, binary.LittleEndian.Uint32(sum[:4]), h.cookie, "cookie of %q", s)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
