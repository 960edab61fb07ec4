package udt

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
)

// seedVectors adds every captured datagram (or its body, with body set) to f.
func seedVectors(f *testing.F, body bool) {
	for _, vf := range loadVectors(f) {
		for _, vp := range vf.Packets {
			b, err := hex.DecodeString(vp.Hex)
			if err != nil {
				f.Fatal(err)
			}
			if body {
				b = b[headerSize:]
			}
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add(make([]byte, 15))
	f.Add(make([]byte, 16))
	f.Add([]byte{0x80, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
}

func FuzzPacket(f *testing.F) {
	seedVectors(f, false)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePacket(b)
		if err != nil {
			if len(b) >= headerSize {
				t.Fatalf("rejected a %d-byte datagram: %v", len(b), err)
			}
			return
		}
		out := p.append(nil)
		if !bytes.Equal(out, b) {
			// Only bits the header does not keep may differ: none.
			t.Fatalf("round trip changed the datagram:\n in %x\nout %x", b, out)
		}
	})
}

func FuzzHandshake(f *testing.F) {
	seedVectors(f, true)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHandshake(b)
		if err != nil {
			return
		}
		out := h.append(nil)
		if !bytes.Equal(out, b[:hsBodySize]) {
			t.Fatalf("round trip changed the handshake:\n in %x\nout %x", b[:hsBodySize], out)
		}
		h2, err := parseHandshake(out)
		if err != nil || h2 != h {
			t.Fatalf("re-parse differs: %+v vs %+v (%v)", h, h2, err)
		}
		_ = peerIPAddr(h.peerIP)
	})
}

func FuzzACK(f *testing.F) {
	seedVectors(f, true)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseACK(b)
		if err != nil {
			return
		}
		out := a.append(nil)
		if len(out) != 4*a.words || !bytes.Equal(out, b[:len(out)]) {
			t.Fatalf("round trip changed the ACK:\n in %x\nout %x", b, out)
		}
		a2, err := parseACK(out)
		if err != nil || a2 != a {
			t.Fatalf("re-parse differs: %+v vs %+v (%v)", a, a2, err)
		}
	})
}

func FuzzDrop(f *testing.F) {
	seedVectors(f, true)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseDrop(b)
		if err != nil {
			return
		}
		out := d.append(nil)
		if !bytes.Equal(out, b[:8]) {
			t.Fatalf("round trip changed the drop request:\n in %x\nout %x", b[:8], out)
		}
	})
}

func FuzzPeerIP(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1})
	f.Add(netip.IPv6Loopback().AsSlice())
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		var field [16]byte
		putPeerIP(&field, ip)
		got := peerIPAddr(field)
		want := ip.Unmap()
		if want.Is6() && [12]byte(want.AsSlice()[4:]) == [12]byte{} {
			// An IPv6 address whose last 12 bytes are zero is
			// indistinguishable from IPv4 in this field.
			return
		}
		if got != want {
			t.Fatalf("peer IP %v came back as %v", want, got)
		}
	})
}
