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
type Dir struct {
	path string
	opts Options

	mu      sync.Mutex
	writers []*Writer // one per file; guarded by mu
	files   []string  // paths, as writers; guarded by mu
	err     error     // the first error creating a file; guarded by mu
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
	d.writers = append(d.writers, w)
	d.files = append(d.files, f.Name())
	return w.Tracer()
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
