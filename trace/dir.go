package trace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/udt-go/udt"
)

// A Dir writes the trace of each connection to a file of its own in a
// directory, named by role, start time (UTC) and socket ID:
// client-20260102T150405.123456Z-3120573629.jsonl. A Dir is safe for
// concurrent use; its zero value is not usable (see [NewDir]).
//
// Each connection open costs its file descriptor and a [Writer]: about
// 5 KB and no goroutine while the connection is quiet, two buffers of up
// to Options.BufferSize plus 4 KiB (136 KiB by default) and a goroutine
// while it is busy and a second after. A server with 10,000 quiet traced
// connections holds about 50 MB for them. A connection's Writer is let
// go once its trace is written; the Dir keeps its path (see Files).
type Dir struct {
	path string
	opts Options

	mu      sync.Mutex
	writers []*Writer // of the traces not known to be written; guarded by mu
	files   []string  // paths of every file created; guarded by mu
	err     error     // the first error creating or writing a file; guarded by mu
	closed  bool      // guarded by mu
}

// NewDir returns a Dir writing into the directory path, which it creates
// if need be.
func NewDir(path string, opts Options) (*Dir, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	return &Dir{path: path, opts: opts}, nil
}

// Tracer creates the file of the connection info describes and returns
// the hooks that write it; it is a [udt.Config] Tracer. A connection whose
// file cannot be created is not traced (nil), and Close reports the
// error; so is one that comes after Close.
func (d *Dir) Tracer(info udt.TraceInfo) *udt.ConnTracer {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	f, err := d.createLocked(info)
	if err != nil {
		if d.err == nil {
			d.err = fmt.Errorf("trace: %w", err)
		}
		return nil
	}
	w := newWriter(f, f, info, d.opts)
	if len(d.writers) == cap(d.writers) {
		d.pruneLocked()
	}
	d.writers = append(d.writers, w)
	d.files = append(d.files, f.Name())
	return w.Tracer()
}

// pruneLocked lets go the Writers whose traces are written, keeping the
// first error. d.mu held.
func (d *Dir) pruneLocked() {
	d.writers = slices.DeleteFunc(d.writers, func(w *Writer) bool {
		select {
		case <-w.done:
		default:
			return false
		}
		if err := w.Err(); err != nil && d.err == nil {
			d.err = fmt.Errorf("trace: %w", err)
		}
		return true
	})
}

// createLocked creates the connection's file, under a name no other file
// has (a suffix tells two apart). d.mu held.
func (d *Dir) createLocked(info udt.TraceInfo) (*os.File, error) {
	base := info.Role.String() + "-" + info.Start.UTC().Format("20060102T150405.000000Z") +
		"-" + strconv.FormatUint(uint64(info.SocketID), 10)
	for i := 1; ; i++ {
		name := base + ".jsonl"
		if i > 1 {
			name = base + "-" + strconv.Itoa(i) + ".jsonl"
		}
		f, err := os.OpenFile(filepath.Join(d.path, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, fs.ErrExist) || i == 100 {
			return f, err
		}
	}
}

// Close ends the traces of the connections still open (their later events
// are dropped), waits until every file is written and closed, and
// returns the first error creating, writing or closing one. Connections
// made after Close are not traced. Close is idempotent.
func (d *Dir) Close() error {
	d.mu.Lock()
	d.closed = true
	ws, err := slices.Clone(d.writers), d.err
	d.mu.Unlock()
	for _, w := range ws {
		if werr := w.Close(); werr != nil && err == nil {
			err = fmt.Errorf("trace: %w", werr)
		}
	}
	return err
}

// Files returns the paths of the files the Dir has created, in the order
// it created them.
func (d *Dir) Files() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.files)
}
