package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The stream, after the rendezvous: the name's length (2 bytes, big
// endian) and the name, the size (8 bytes), the bytes, their SHA-256.
const maxName = 1024

// send copies file to the peer.
func send(ctx context.Context, o peerOptions, file string, log io.Writer) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	release, c, err := connect(ctx, o, log)
	if err != nil {
		return err
	}
	defer release()
	name := filepath.Base(file)
	hdr := binary.BigEndian.AppendUint16(nil, uint16(len(name)))
	hdr = append(hdr, name...)
	hdr = binary.BigEndian.AppendUint64(hdr, uint64(st.Size()))
	if _, err := c.Write(hdr); err != nil {
		c.Close()
		return err
	}
	h := sha256.New()
	p := newProgress(log, "sent", st.Size())
	n, err := copyProgress(io.MultiWriter(c, h), f, p)
	if err == nil && n != st.Size() {
		err = fmt.Errorf("%s changed size while sent: %d of %d bytes", file, n, st.Size())
	}
	if err == nil {
		_, err = c.Write(h.Sum(nil))
	}
	// Close waits until the peer has acknowledged everything.
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	p.update(n, true)
	fmt.Fprintf(log, "sent %s, SHA-256 %x\n", name, h.Sum(nil))
	return nil
}

// recv receives a file from the peer into out, or the name it gives.
func recv(ctx context.Context, o peerOptions, out string, log io.Writer) error {
	release, c, err := connect(ctx, o, log)
	if err != nil {
		return err
	}
	defer release()
	defer c.Close()
	var n2 [2]byte
	if _, err := io.ReadFull(c, n2[:]); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	nameLen := int(binary.BigEndian.Uint16(n2[:]))
	if nameLen == 0 || nameLen > maxName {
		return fmt.Errorf("header: a name of %d bytes", nameLen)
	}
	rest := make([]byte, nameLen+8)
	if _, err := io.ReadFull(c, rest); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	name := filepath.Base(string(rest[:nameLen]))
	if name == "." || name == ".." || name == string(filepath.Separator) {
		return fmt.Errorf("header: file name %q", rest[:nameLen])
	}
	size := int64(binary.BigEndian.Uint64(rest[nameLen:]))
	if size < 0 {
		return fmt.Errorf("header: size %d", size)
	}
	if out == "" {
		out = name
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	h := sha256.New()
	p := newProgress(log, "received", size)
	n, err := copyProgress(io.MultiWriter(f, h), io.LimitReader(c, size), p)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("%w after %d of %d bytes", io.ErrUnexpectedEOF, n, size)
	}
	var sum [sha256.Size]byte
	if err == nil {
		_, err = io.ReadFull(c, sum[:])
	}
	if err == nil && !bytes.Equal(sum[:], h.Sum(nil)) {
		err = errors.New("SHA-256 differs from the sender's: the copy is damaged")
	}
	if err != nil {
		os.Remove(out)
		return err
	}
	p.update(n, true)
	fmt.Fprintf(log, "received %s into %s, SHA-256 %x checked\n", name, out, sum)
	return nil
}

// copyProgress copies src to dst, updating p.
func copyProgress(dst io.Writer, src io.Reader, p *progress) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
			p.update(n, false)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
