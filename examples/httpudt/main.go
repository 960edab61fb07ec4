// Command httpudt runs net/http over UDT: an [http.Server] serving on a UDT
// listener and an [http.Client] whose transport dials UDT. Nothing else
// changes; keep-alive, chunked bodies and timeouts work as over TCP.
//
//	httpudt serve [-addr :9000] [-dir .]      serve the files of a directory
//	httpudt get [-o file] http://host:9000/path   fetch one URL
//
// serve prints "serving DIR on udt ADDR" once it listens. get writes the
// body to stdout (or the file) and the status line and size to stderr; it
// exits non-zero unless the status is 200.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/udt-go/udt"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "get":
		err = get(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpudt:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: httpudt serve [-addr :9000] [-dir .]\n       httpudt get [-o file] URL")
	os.Exit(2)
}

// newServer returns an HTTP server for h. It serves a UDT listener as it
// would a TCP one.
func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
}

// newTransport returns an HTTP transport that dials UDT instead of TCP: the
// address it is given is the URL's host:port, taken as a UDP address.
func newTransport(d *udt.Dialer) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "udp", addr)
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
}

// dirHandler serves the files under dir, and nothing outside it: the
// names are resolved in an os.Root, so neither ".." nor a symbolic link
// leads out (http.Dir follows links wherever they point).
func dirHandler(dir string) (http.Handler, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return http.FileServerFS(root.FS()), nil
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", ":9000", "UDP address to listen on")
	dir := fs.String("dir", ".", "directory to serve")
	_ = fs.Parse(args)

	h, err := dirHandler(*dir)
	if err != nil {
		return err
	}
	ln, err := udt.Listen("udp", *addr)
	if err != nil {
		return err
	}
	srv := newServer(h)
	fmt.Printf("serving %s on udt %s\n", *dir, ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	out := fs.String("o", "", "write the body to this file instead of stdout")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}

	client := &http.Client{Transport: newTransport(&udt.Dialer{})}
	resp, err := client.Get(fs.Arg(0))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := save(*out, resp.Body)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s %s: %d bytes\n", resp.Proto, resp.Status, n)
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// save copies r to the named file, or to stdout if name is empty.
func save(name string, r io.Reader) (int64, error) {
	if name == "" {
		return io.Copy(os.Stdout, r)
	}
	f, err := os.Create(name)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}
