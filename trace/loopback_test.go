package trace

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt"
	"github.com/udt-go/udt/internal/harness"
)

// TestTraceLoopback traces both ends of a transfer over 127.0.0.1, across
// a relay that drops 1 % of the data packets, and reads both files back:
// their events count what the connections' own counters count.
func TestTraceLoopback(t *testing.T) {
	d, err := NewDir(t.TempDir(), Options{})
	require.NoError(t, err)
	c, s := harness.TracedTransfer(t, d.Tracer, 200e6, 4*time.Millisecond, 0.01, 4<<20)
	require.NoError(t, d.Close())

	traces := map[udt.TraceRole]*Trace{}
	for _, f := range d.Files() {
		tr, err := ReadFile(f)
		require.NoError(t, err)
		traces[tr.Header.Role] = tr
	}
	require.Len(t, traces, 2)
	checkEnd(t, traces[udt.RoleClient], c, "local")
	checkEnd(t, traces[udt.RoleServer], s, "peer")
	require.NotZero(t, c.Stats().Total.PktRetrans, "1 % loss and no retransmission")
}

// checkEnd checks one end's trace against its connection.
func checkEnd(t *testing.T, tr *Trace, c *udt.Conn, by string) {
	t.Helper()
	require.Equal(t, c.LocalAddr().String(), tr.Header.Local)
	require.Equal(t, c.RemoteAddr().String(), tr.Header.Remote)
	var n udt.Counters
	for _, e := range tr.Events {
		switch {
		case e.Kind == PacketSent:
			n.PktSent++
			n.BytesSent += uint64(e.Size)
			if e.Retransmit {
				n.PktRetrans++
			}
		case e.Kind == PacketReceived:
			n.PktRecv++
			if e.Discarded != "" {
				n.PktRecvDropped++
			} else {
				n.BytesRecv += uint64(e.Size)
			}
		case e.Kind == ControlSent && e.Type == "nak":
			n.NAKSent++
		case e.Kind == ControlReceived && e.Type == "nak":
			n.NAKRecv++
		case e.Kind == ControlSent && (e.Type == "ack" || e.Type == "light-ack"):
			n.ACKSent++
		case e.Kind == ControlReceived && (e.Type == "ack" || e.Type == "light-ack"):
			n.ACKRecv++
		}
	}
	st := c.Stats().Total
	want := udt.Counters{PktSent: st.PktSent, BytesSent: st.BytesSent, PktRetrans: st.PktRetrans,
		PktRecv: st.PktRecv, PktRecvDropped: st.PktRecvDropped, BytesRecv: st.BytesRecv,
		NAKSent: st.NAKSent, NAKRecv: st.NAKRecv, ACKSent: st.ACKSent, ACKRecv: st.ACKRecv}
	require.Equal(t, want, n, "%s: counted in the file, and by the connection", tr.Header.Role)
	last := tr.Events[len(tr.Events)-1]
	require.Equal(t, Closed, last.Kind)
	require.Equal(t, by, last.By)
}
