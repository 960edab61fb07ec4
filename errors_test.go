package udt

import (
	"errors"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Each error type matches its sentinel, and the timeouts are net.Errors
// that say so.
func TestErrorsMatch(t *testing.T) {
	lost := &connLostError{"a gap in the peer's data unrepaired for 46s"}
	require.ErrorIs(t, lost, ErrConnLost)
	require.Equal(t, "udt: connection lost: a gap in the peer's data unrepaired for 46s", lost.Error())
	for _, err := range []error{ErrConnLost, ErrHandshakeTimeout, lost} {
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		require.True(t, ne.Timeout(), "%v", err)
	}
	require.NotErrorIs(t, ErrHandshakeTimeout, ErrConnLost)

	un := &UnacknowledgedError{Bytes: 1500, Reason: "linger ran out"}
	require.ErrorIs(t, un, ErrUnacknowledged)
	require.Equal(t, "udt: 1500 bytes written were not acknowledged before the shutdown: linger ran out", un.Error())
	require.NotErrorIs(t, un, ErrConnLost)
	// Data left by a connection that ended before Close: the error that
	// ended it matches too.
	un = &UnacknowledgedError{Bytes: 1500, Reason: lost.Error(), Err: lost}
	require.ErrorIs(t, un, ErrUnacknowledged)
	require.ErrorIs(t, un, ErrConnLost)
	require.NotErrorIs(t, un, ErrPeerClosed)
	un = &UnacknowledgedError{Bytes: 1500, Reason: "udt: socket failed", Err: &SocketError{Err: os.ErrClosed}}
	require.ErrorIs(t, un, os.ErrClosed)
	var sockErr *SocketError
	require.ErrorAs(t, un, &sockErr)

	short := &MessageSizeError{Size: 9000, Buf: 1500}
	require.ErrorIs(t, short, io.ErrShortBuffer)
	require.Contains(t, short.Error(), "9000")

	large := &MessageTooLargeError{Size: 1 << 30, Max: 1 << 20}
	require.Contains(t, large.Error(), "1073741824")

	require.ErrorIs(t, ErrTransportClosed, net.ErrClosed)
	require.ErrorIs(t, &SocketError{Err: ErrTransportClosed}, ErrTransportClosed)

	sock := &SocketError{Err: os.ErrClosed}
	require.ErrorIs(t, sock, os.ErrClosed)
	var se *SocketError
	require.ErrorAs(t, error(sock), &se)
	require.False(t, errors.Is(sock, ErrConnLost))
}

// The package documentation's Errors section names every exported error
// errors.go declares.
func TestPackageDocNamesErrors(t *testing.T) {
	src, err := os.ReadFile("udt.go")
	require.NoError(t, err)
	doc, _, ok := strings.Cut(string(src), "\npackage udt")
	require.True(t, ok)
	_, section, ok := strings.Cut(doc, "# Errors")
	require.True(t, ok, "the package doc has an Errors section")
	section, _, _ = strings.Cut(section, "\n// #")
	decls, err := os.ReadFile("errors.go")
	require.NoError(t, err)
	names := regexp.MustCompile(`(?m)^\t(Err\w+)\s|^type ([A-Z]\w*Error) struct`).FindAllStringSubmatch(string(decls), -1)
	require.NotEmpty(t, names)
	for _, m := range names {
		name := m[1] + m[2]
		require.Regexp(t, `\[\*?`+name+`\]`, section, "the Errors section names %s", name)
	}
}
