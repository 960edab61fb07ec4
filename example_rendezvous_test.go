package udt_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"time"

	"github.com/udt-go/udt"
)

// Two peers meet in rendezvous mode: each dials the other from a bound
// port, and neither listens. Either may start first.
func ExampleDialRendezvous() {
	// Two local ports that are free (a real use knows its own and learns
	// the peer's, typically through a rendezvous server).
	var ports [2]string
	for i := range ports {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		ports[i] = strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
		pc.Close()
	}
	a, b := "127.0.0.1:"+ports[0], "127.0.0.1:"+ports[1]

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := udt.DialRendezvous(ctx, "udp", b, a)
		if err == nil {
			_, err = c.Write([]byte("hello from B"))
			c.Close()
		}
		done <- err
	}()
	c, err := udt.DialRendezvous(ctx, "udp", a, b)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	msg, err := io.ReadAll(c) // until B's shutdown
	if err != nil {
		log.Fatal(err)
	}
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(msg))
	// Output: hello from B
}
