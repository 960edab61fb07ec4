package udt

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// The last user's release closes the socket before the address leaves the
// registry: a Listen racing with it either shares the old multiplexer or
// binds the port afresh, never fails with "address already in use".
func TestListenRacingRelease(t *testing.T) {
	ln, err := Listen("udp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	for range 100 {
		ln, err := Listen("udp", addr)
		require.NoError(t, err)
		c, err := Dial("udp", addr)
		require.NoError(t, err)
		s, err := ln.Accept()
		require.NoError(t, err)
		require.NoError(t, ln.Close())
		require.NoError(t, c.Close())
		var wg sync.WaitGroup
		wg.Go(func() { _ = s.Close() }) // the port's last user, soon
		for range 50 {
			ln2, err := Listen("udp", addr)
			require.NoError(t, err, "Listen raced with the release of the port's multiplexer")
			require.NoError(t, ln2.Close())
		}
		wg.Wait()
	}
}
