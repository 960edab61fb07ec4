// Package grpc shows gRPC served and called over UDT: a UDT listener
// handed to grpc.Server.Serve, and a client whose context dialer dials
// UDT (see its test). It is a module of its own, so that gRPC and protobuf
// stay out of the module graph of programs that import only the library.
package grpc
