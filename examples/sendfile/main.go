// Command sendfile is the Go counterpart of the C++ library's sendfile
// example: a UDT server that sends clients the files they ask for from its
// working directory.
//
//	sendfile [server_port]
//
// The port defaults to 9000. A client (../recvfile or the C++ recvfile)
// sends the name's length as a 32-bit little-endian integer and then the
// name; the server answers with the file's size as a 64-bit little-endian
// integer (-1 if it cannot serve the file) and then its bytes, and closes.
//
// Unlike the C++ example, which opens whatever path it is given, only
// files inside the working directory are served: names that are absolute
// or climb out of it (with ".." or through a symbolic link) get -1.
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/udt-go/udt/examples/internal/server"
)

// maxName is the longest file name accepted, as the C++ example's buffer.
const maxName = 1023

func main() {
	port := server.Port("sendfile [server_port]")
	root, err := os.OpenRoot(".")
	if err != nil {
		fmt.Println("working directory:", err)
		os.Exit(1)
	}
	server.Serve(port, "illegal port number or port is busy", func(c net.Conn) {
		if err := serve(c, root); err != nil {
			fmt.Println(err)
		}
	})
}

// serve answers one request and closes c; Close waits until the client has
// acknowledged everything sent.
func serve(c net.Conn, root *os.Root) (err error) {
	defer func() {
		if cerr := c.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close: %w", cerr)
		}
	}()
	name, err := readName(c)
	if err != nil {
		return fmt.Errorf("recv: %w", err)
	}
	f, size := open(root, name)
	if f != nil {
		defer f.Close()
	}
	if err := binary.Write(c, binary.LittleEndian, size); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if f == nil {
		return fmt.Errorf("%q: not served", name)
	}
	start := time.Now()
	n, err := io.CopyN(c, f, size)
	if err != nil {
		return fmt.Errorf("sendfile %q: %w", name, err)
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("sent %s: %d bytes in %.2f s, speed = %.1f Mbits/sec\n", name, n, secs, float64(n)*8/1e6/max(secs, 1e-9))
	return nil
}

// readName reads the request: a 32-bit little-endian length, then the name.
func readName(r io.Reader) (string, error) {
	var n int32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return "", err
	}
	if n <= 0 || n > maxName {
		return "", fmt.Errorf("file name length %d out of range 1..%d", n, maxName)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// open opens a regular file under root and returns it with its size, or
// nil and -1 when it cannot be served.
func open(root *os.Root, name string) (*os.File, int64) {
	f, err := root.Open(name)
	if err != nil {
		return nil, -1
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, -1
	}
	return f, st.Size()
}
