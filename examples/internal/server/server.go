// Package server holds what the example servers (appserver, sendfile) share
// with their C++ counterparts: the optional port argument and the accept
// loop with its messages.
package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/udt-go/udt"
)

// Port returns the port given as the only argument, 9000 without one; any
// other argument list prints usage and exits.
func Port(usage string) string {
	switch len(os.Args) {
	case 1:
		return "9000"
	case 2:
		if p, err := strconv.Atoi(os.Args[1]); err == nil && p > 0 && p <= 65535 {
			return os.Args[1]
		}
	}
	fmt.Println("usage:", usage)
	os.Exit(1)
	return ""
}

// Serve listens on port, prints "server is ready at port: P", and runs
// handle on its own goroutine for each connection, after printing "new
// connection: ADDR". It returns when SIGINT or SIGTERM closes the listener.
// listenErr prefixes the message printed if listening fails.
func Serve(port, listenErr string, handle func(net.Conn)) {
	ln, err := udt.Listen("udp", ":"+port)
	if err != nil {
		fmt.Println(listenErr+":", err)
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
		go handle(c)
	}
}
