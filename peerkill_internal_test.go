package udt

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// peerProcess is the test binary run as a child process by
// TestPeerProcessKilled: it dials addr, says "ready" on stdout, then
// sends (role "send") or reads (role "recv") until it is killed.
func peerProcess(role, addr string) {
	c, err := Dial("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer process:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	switch role {
	case "send":
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				os.Exit(3)
			}
		}
	case "recv":
		_, _ = io.Copy(io.Discard, c)
	}
	os.Exit(4)
}

// startPeerProcess runs the test binary as a peer process in role that
// dials ln, and returns it with the connection ln accepted from it.
func startPeerProcess(t *testing.T, ln *Listener, role string) (*exec.Cmd, *Conn) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "UDT_TEST_PEER="+role, "UDT_TEST_PEER_ADDR="+ln.Addr().String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	require.NoError(t, ln.SetDeadline(time.Now().Add(10*time.Second)))
	s, err := ln.AcceptUDT()
	require.NoError(t, err, "the peer process did not connect")
	t.Cleanup(func() { s.Close() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
	return cmd, s
}

// A peer process killed mid-transfer (SIGKILL: no shutdown is sent) is
// found lost within the broken-connection bound: the survivor's blocked
// Read, or its blocked Write, returns ErrConnLost. Checked at the C++
// library's bound (about 46 s) and at a PeerIdleTimeout of 2 s, with the
// peer sending and with it receiving.
func TestPeerProcessKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the broken-connection timeout (46 s); -short skips it")
	}
	t.Parallel()
	for _, tc := range []struct {
		name     string
		idle     time.Duration // Config.PeerIdleTimeout
		min, max time.Duration // when the survivor's call must fail, from the kill
	}{
		// The bounds count from the peer's last packet, which comes a few
		// milliseconds before the kill.
		// Reading, the survivor has nothing outstanding: 4.11's rule, the
		// 17th EXP expiry (300 ms, 600 ms, ... at a loopback RTT) more
		// than 5 s after the last packet: 45.9 s. Writing, 46 s without
		// an ACK.
		{"default", 0, 40 * time.Second, 50 * time.Second},
		{"PeerIdleTimeout 2s", 2 * time.Second, 1900 * time.Millisecond, 4 * time.Second},
	} {
		for _, role := range []string{"send", "recv"} {
			t.Run(tc.name+"/peer "+role+"s", func(t *testing.T) {
				t.Parallel()
				ln, err := (&ListenConfig{Config: Config{PeerIdleTimeout: tc.idle, Linger: -1}}).
					ListenUDT(t.Context(), "udp4", "127.0.0.1:0")
				require.NoError(t, err)
				defer ln.Close()
				cmd, s := startPeerProcess(t, ln, role)

				// Mid-transfer: at least 4 MiB moved, and still moving.
				buf := make([]byte, 64<<10)
				var moved int
				for moved < 4<<20 {
					var n int
					if role == "send" {
						n, err = s.Read(buf)
					} else {
						n, err = s.Write(buf)
					}
					require.NoError(t, err)
					moved += n
				}
				callErr := make(chan error, 1)
				go func() {
					for {
						var err error
						if role == "send" {
							_, err = s.Read(buf)
						} else {
							_, err = s.Write(buf)
						}
						if err != nil {
							callErr <- err
							return
						}
					}
				}()
				killed := time.Now()
				require.NoError(t, cmd.Process.Kill())
				_, _ = cmd.Process.Wait()
				select {
				case err := <-callErr:
					took := time.Since(killed)
					t.Logf("%s failed %v after the kill: %v", map[string]string{"send": "Read", "recv": "Write"}[role],
						took.Round(time.Millisecond), err)
					require.ErrorIs(t, err, ErrConnLost)
					var oe *net.OpError
					require.ErrorAs(t, err, &oe)
					require.GreaterOrEqual(t, took, tc.min, "declared lost too soon")
					require.Less(t, took, tc.max, "not declared lost within the bound")
				case <-time.After(tc.max + 5*time.Second):
					t.Fatalf("no error %v after the peer was killed", tc.max+5*time.Second)
				}
			})
		}
	}
}
