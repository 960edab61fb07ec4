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
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/udt-go/udt"
)

func main() {
	port := "9000"
	switch len(os.Args) {
	case 1:
	case 2:
		if p, err := strconv.Atoi(os.Args[1]); err != nil || p <= 0 || p > 65535 {
			usage()
		}
		port = os.Args[1]
	default:
		usage()
	}
	ln, err := udt.Listen("udp", ":"+port)
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	fmt.Println("server is ready at port:", port)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		_ = ln.Close()
	}()

	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			fmt.Println("accept:", err)
			continue
		}
		fmt.Println("new connection:", c.RemoteAddr())
		go serve(c)
	}
}

// serve reads and discards until the client goes.
func serve(c net.Conn) {
	defer c.Close()
	if _, err := io.Copy(io.Discard, c); err != nil {
		fmt.Println("recv:", err)
	}
}

func usage() {
	fmt.Println("usage: appserver [server_port]")
	os.Exit(1)
}
