package grpc_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/udt-go/udt"
)

// echoService is a gRPC service written by hand, without generated code:
// its messages are protobuf's well-known wrapper types.
type echoService interface {
	// Echo returns its argument.
	Echo(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error)
	// Chunks answers each message of a stream with the same bytes.
	Chunks(grpc.ServerStream) error
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "udt.test.Echo",
	HandlerType: (*echoService)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if icpt == nil {
				return srv.(echoService).Echo(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/udt.test.Echo/Echo"}
			return icpt(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return srv.(echoService).Echo(ctx, req.(*wrapperspb.BytesValue))
			})
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Chunks",
		Handler:       func(srv any, s grpc.ServerStream) error { return srv.(echoService).Chunks(s) },
		ServerStreams: true,
		ClientStreams: true,
	}},
}

type echoImpl struct{}

func (echoImpl) Echo(_ context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	return in, nil
}

func (echoImpl) Chunks(s grpc.ServerStream) error {
	for {
		in := new(wrapperspb.BytesValue)
		if err := s.RecvMsg(in); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := s.SendMsg(in); err != nil {
			return err
		}
	}
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// TestGRPC serves a gRPC service on a UDT listener and calls it through a
// client whose dialer dials UDT: unary calls, then a bidirectional stream
// of 64 messages of 64 KiB, all on one UDT connection.
func TestGRPC(t *testing.T) {
	ln, err := udt.Listen("udp", "127.0.0.1:0")
	require.NoError(t, err)
	cl := &countingListener{Listener: ln}
	srv := grpc.NewServer()
	srv.RegisterService(&echoDesc, echoImpl{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(cl) }()
	defer func() {
		srv.Stop()
		require.NoError(t, <-served)
	}()

	cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return udt.DialContext(ctx, "udp", addr)
		}),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	for _, size := range []int{0, 1, 1000, 1 << 20} {
		in := wrapperspb.Bytes(bytes.Repeat([]byte{byte(size)}, size))
		out := new(wrapperspb.BytesValue)
		require.NoError(t, cc.Invoke(ctx, "/udt.test.Echo/Echo", in, out), "unary %d bytes", size)
		require.True(t, bytes.Equal(in.Value, out.Value), "unary %d bytes: %d back", size, len(out.Value))
	}

	st, err := cc.NewStream(ctx, &echoDesc.Streams[0], "/udt.test.Echo/Chunks")
	require.NoError(t, err)
	const msgs, size = 64, 64 << 10
	sent := make(chan error, 1)
	go func() {
		for i := range msgs {
			if err := st.SendMsg(wrapperspb.Bytes(bytes.Repeat([]byte{byte(i)}, size))); err != nil {
				sent <- err
				return
			}
		}
		sent <- st.CloseSend()
	}()
	for i := range msgs {
		out := new(wrapperspb.BytesValue)
		require.NoError(t, st.RecvMsg(out), "stream message %d", i)
		require.Equal(t, bytes.Repeat([]byte{byte(i)}, size), out.Value, "stream message %d", i)
	}
	require.ErrorIs(t, st.RecvMsg(new(wrapperspb.BytesValue)), io.EOF, "end of stream")
	require.NoError(t, <-sent)
	require.Equal(t, int64(1), cl.n.Load(), "UDT connections accepted")
}
