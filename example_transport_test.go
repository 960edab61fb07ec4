package udt_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/udt-go/udt"
)

// A Transport carries UDT on a socket the caller made: here one listens
// and another dials from its own socket.
func ExampleTransport() {
	server, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close() // the caller's socket: Transport.Close leaves it open
	st, err := udt.NewTransport(server)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ln, err := st.Listen(udt.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("hello from the server's socket"))
			_ = c.Close()
		}
	}()

	client, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ct, err := udt.NewTransport(client)
	if err != nil {
		log.Fatal(err)
	}
	defer ct.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ct.Dial(ctx, server.LocalAddr(), udt.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
	// Output: hello from the server's socket
}

// A Transport shares its socket with the caller's own datagrams, as a
// peer behind a NAT does with STUN: the request goes out from the same
// port the UDT connections use, and the answer, not UDT's, comes back
// through ReadNonUDTPacket. (The "STUN server" here is a plain UDP socket
// that echoes.)
func ExampleTransport_ReadNonUDTPacket() {
	stunServer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	defer stunServer.Close()
	go func() {
		buf := make([]byte, 1500)
		n, from, err := stunServer.ReadFrom(buf)
		if err == nil {
			reply := append([]byte("you are "+from.String()+": "), buf[:n]...)
			_, _ = stunServer.WriteTo(reply, from)
		}
	}()

	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0})
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()
	tr, err := udt.NewTransport(pc)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.WriteTo([]byte("binding request"), stunServer.LocalAddr()); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]byte, 1500)
	n, from, err := tr.ReadNonUDTPacket(ctx, buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(from.String() == stunServer.LocalAddr().String())
	fmt.Println(string(buf[:n]) == "you are "+pc.LocalAddr().String()+": binding request")
	// Output:
	// true
	// true
}
