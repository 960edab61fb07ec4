package udt

import (
	"errors"
	"fmt"
	"io"
	"net"
)

// The errors the package returns: sentinels to match with errors.Is, and
// the types that carry details (match them with errors.As). Errors about
// a bad argument name it and are made where the argument is checked.

var (
	// ErrConnLost reports a peer silent past the broken-connection bound,
	// or making no progress for as long (see Config.PeerIdleTimeout): its
	// ACK does not advance while our data is outstanding, or a gap in its
	// data stays unrepaired. The error returned matches it with errors.Is
	// and says which.
	ErrConnLost error = &timeoutError{"udt: connection lost: peer silent"}
	// ErrConnRefused reports a listener's refusal (handshake type 1002).
	ErrConnRefused = errors.New("udt: connection refused")
	// ErrHandshakeTimeout reports a handshake not answered in time.
	ErrHandshakeTimeout error = &timeoutError{"udt: handshake timed out"}
	// ErrPeerClosed is returned by Write after the peer shut the connection down.
	ErrPeerClosed = errors.New("udt: peer closed the connection")
	// ErrPeerAborted is returned by Read when the peer shut the connection
	// down while packets it sent were still missing (its linger time ran
	// out): the stream is incomplete.
	ErrPeerAborted = errors.New("udt: peer shut down before all its data arrived")
	// ErrTooManyConns is returned by a Dial from a local address whose
	// socket already carries Config.MaxConns connections.
	ErrTooManyConns = errors.New("udt: too many connections on the UDP socket (Config.MaxConns)")
	// ErrUnacknowledged matches the error Close returns when written data
	// was not acknowledged before the connection ended, by Close's
	// shutdown or before it (see [UnacknowledgedError]).
	ErrUnacknowledged = errors.New("udt: written data not acknowledged before the shutdown")
	// ErrNotMessageMode is returned by WriteMessage and ReadMessage on a
	// stream connection (the C++ library's ESTREAMILL).
	ErrNotMessageMode = errors.New("udt: message call on a stream connection")
	// ErrHandshakeRejected reports a handshake answer the client cannot accept
	// (the server's echo of the ISN does not match).
	ErrHandshakeRejected = errors.New("udt: handshake response rejected")
)

// Errors of the API's own, returned as they are.
var (
	errListenerExists     = errors.New("udt: a listener already uses this address")
	errRendezvousListener = errors.New("udt: a listener uses this port: requests with destination 0 reach it, so a rendezvous cannot")
	errRendezvousPending  = errors.New("udt: a rendezvous dial is in progress on this port: a listener would take its peer's requests")
	errRendezvousTwice    = errors.New("udt: a rendezvous with this peer is already in progress on this port")
)

// timeoutError is an error whose Timeout method reports true.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// errPortZero is the error of a dial to port 0, which no listener has.
func errPortZero(address string) error {
	return fmt.Errorf("udt: dial address %q has port 0: a listener's port is needed", address)
}

// handshakeTimeoutError is ErrHandshakeTimeout with what is known of why,
// and the context's error when its deadline ended the handshake (it then
// matches context.DeadlineExceeded, as net's dial errors do).
type handshakeTimeoutError struct {
	detail string
	ctxErr error
}

func (e *handshakeTimeoutError) Error() string {
	if e.detail == "" {
		return "udt: handshake timed out"
	}
	return "udt: handshake timed out: " + e.detail
}
func (e *handshakeTimeoutError) Timeout() bool        { return true }
func (e *handshakeTimeoutError) Temporary() bool      { return true }
func (e *handshakeTimeoutError) Is(target error) bool { return target == ErrHandshakeTimeout }
func (e *handshakeTimeoutError) Unwrap() error        { return e.ctxErr }

// connLostError is ErrConnLost with another reason than the peer's silence.
type connLostError struct{ reason string }

func (e *connLostError) Error() string        { return "udt: connection lost: " + e.reason }
func (e *connLostError) Timeout() bool        { return true }
func (e *connLostError) Temporary() bool      { return true }
func (e *connLostError) Is(target error) bool { return target == ErrConnLost }

// UnacknowledgedError is returned by Close when written data was still
// unacknowledged as the connection shut down: Close's linger gave up
// (Config.Linger ran out or is negative, Config.LingerStall, the context
// of CloseContext), or the connection had ended first, before Close or
// during its linger: it failed ([ErrConnLost], a [*SocketError]), or the
// peer shut it down ([ErrPeerClosed]). The peer may not have received
// those bytes, and it cannot tell: after Close's own shutdown its Read
// sees the end of the stream. It matches [ErrUnacknowledged] with
// errors.Is, and, when the connection had ended first, the error that
// ended it too (Err, which Write reported then).
type UnacknowledgedError struct {
	Bytes  int    // written, not acknowledged
	Reason string // why Close stopped waiting, or Err's message
	Err    error  // what ended the connection before Close, or nil if Close did
}

// Error says how many bytes were left unacknowledged, and why.
func (e *UnacknowledgedError) Error() string {
	msg := fmt.Sprintf("udt: %d bytes written were not acknowledged before the shutdown", e.Bytes)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Is reports whether target is ErrUnacknowledged.
func (e *UnacknowledgedError) Is(target error) bool { return target == ErrUnacknowledged }

// Unwrap returns Err: the error that ended the connection before Close,
// or nil.
func (e *UnacknowledgedError) Unwrap() error { return e.Err }

// MessageSizeError is returned by ReadMessage (and Read, on a message
// connection) when the buffer is shorter than the next message. The
// message stays queued: a call with a buffer of at least Size bytes reads
// it. It matches [io.ErrShortBuffer] with errors.Is.
type MessageSizeError struct {
	Size int // bytes in the message
	Buf  int // bytes in the buffer given
}

// Error names the message's size and the buffer's.
func (e *MessageSizeError) Error() string {
	return fmt.Sprintf("udt: message of %d bytes does not fit a %d-byte buffer", e.Size, e.Buf)
}

// Unwrap returns io.ErrShortBuffer.
func (e *MessageSizeError) Unwrap() error { return io.ErrShortBuffer }

// MessageTooLargeError is returned by WriteMessage (and Write, on a
// message connection) for a message that cannot fit the send buffer or
// the peer's receive buffer (the C++ library's ELARGEMSG).
type MessageTooLargeError struct {
	Size int // bytes in the message
	Max  int // the largest message the connection carries, bytes
}

// Error names the message's size and the limit.
func (e *MessageTooLargeError) Error() string {
	return fmt.Sprintf("udt: message of %d bytes exceeds the %d-byte limit of the send and peer's receive buffers", e.Size, e.Max)
}

// SocketError reports that the UDP socket under a connection or listener
// failed for good: it was closed from outside, or reading from it kept
// failing. Every connection sharing the socket ends with it.
type SocketError struct {
	Err error // the socket's error
}

// Error names the socket's error.
func (e *SocketError) Error() string { return "udt: UDP socket failed: " + e.Err.Error() }

// Unwrap returns the socket's error.
func (e *SocketError) Unwrap() error { return e.Err }

// ErrTransportClosed is the error of a Transport's methods after Close,
// and of its connections' calls after Close ended them. It matches
// net.ErrClosed.
var ErrTransportClosed error = transportClosedError{}

type transportClosedError struct{}

func (transportClosedError) Error() string        { return "udt: transport closed" }
func (transportClosedError) Is(target error) bool { return target == net.ErrClosed }
