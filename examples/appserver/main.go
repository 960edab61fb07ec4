// Command appserver is the Go counterpart of the C++ library's appserver
// example: it accepts any number of UDT clients and reads and discards what
// they send.
//
//	appserver [server_port]
//
// The port defaults to 9000. It works with the C++ appclient and with
// ../appclient.
package main

import (
	"fmt"
	"io"
	"net"

	"github.com/udt-go/udt/examples/internal/server"
)

func main() {
	server.Serve(server.Port("appserver [server_port]"), "listen", serve)
}

// serve reads and discards until the client goes.
func serve(c net.Conn) {
	defer c.Close()
	if _, err := io.Copy(io.Discard, c); err != nil {
		fmt.Println("recv:", err)
	}
}
