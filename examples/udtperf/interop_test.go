package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/interop"
)

// cppSource is the C++ udtperf, relative to this package.
const cppSource = "../../internal/interop/cpeer/udtperf.cpp"

var cppBuilt struct {
	once sync.Once
	path string
	err  error
}

// cppUdtperf returns the C++ udtperf, built once per test binary. Without
// libudt and g++ it skips the test, or fails it under UDT_INTEROP=require.
func cppUdtperf(t *testing.T) string {
	t.Helper()
	if err := interop.Available(); err != nil {
		if os.Getenv(interop.RequireEnv) == "require" {
			t.Fatalf("%s=require but the C++ udtperf cannot be built: %v", interop.RequireEnv, err)
		}
		t.Skipf("libudt not installed (apt-get install libudt-dev g++): %v", err)
	}
	cppBuilt.once.Do(func() {
		dir, err := os.MkdirTemp("", "udtperf-cpp-")
		if err != nil {
			cppBuilt.err = err
			return
		}
		bin := filepath.Join(dir, "udtperf-cpp")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "g++", "-O2", "-o", bin, cppSource, "-ludt", "-lpthread").CombinedOutput()
		if err != nil {
			cppBuilt.err = fmt.Errorf("g++ -O2 -o udtperf-cpp udtperf.cpp -ludt -lpthread: %w\n%s", err, out)
			return
		}
		cppBuilt.path = bin
	})
	require.NoError(t, cppBuilt.err)
	return cppBuilt.path
}

// cppServer runs the C++ server on a port it picks and returns the port
// and a function that stops it and returns its output.
func cppServer(t *testing.T, bin string) (int, func() string) {
	t.Helper()
	cmd := exec.Command(bin, "-s", "-p", "0", "-json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var mu sync.Mutex
	var out []string
	first := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			if len(out) == 0 {
				first <- sc.Text()
			}
			out = append(out, sc.Text())
			mu.Unlock()
		}
	}()
	var once sync.Once
	stop := func() string {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-done
			_ = cmd.Wait()
		})
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(out, "\n") + "\n"
	}
	t.Cleanup(func() {
		s := stop()
		if t.Failed() {
			t.Logf("C++ server stdout:\n%s\nstderr:\n%s", s, stderr.String())
		}
	})
	var line string
	select {
	case line = <-first:
	case <-time.After(10 * time.Second):
		t.Fatalf("C++ server printed nothing; stderr: %s", stderr.String())
	}
	var l listeningReport
	require.NoError(t, json.Unmarshal([]byte(line), &l), "line %q", line)
	require.Equal(t, "listening", l.Type)
	require.Equal(t, "cpp", l.Impl)
	require.Positive(t, l.Port)
	return l.Port, stop
}

// runCppClient runs the C++ client against port with -json and args.
func runCppClient(t *testing.T, bin string, port int, secs float64, args ...string) clientRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(secs*float64(time.Second))+resultTimeout+30*time.Second)
	defer cancel()
	args = append([]string{"-c", "127.0.0.1", "-p", fmt.Sprint(port), "-t", fmt.Sprint(secs), "-json"}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "C++ client %q: stdout:\n%s\nstderr:\n%s", args, out, stderr.String())
	sameKeys(t, string(out))
	return decodeClient(t, string(out))
}

// sameKeys checks that every line of a C++ program's JSON output has the
// fields of the Go report of its type, no more and no fewer.
func sameKeys(t *testing.T, out string) {
	t.Helper()
	want := map[string]any{
		"start": startReport{}, "interval": intervalReport{}, "summary": summary{},
		"listening": listeningReport{}, "test": serverTestReport{}, "error": errorReport{},
	}
	for _, o := range lines(t, out) {
		typ, _ := o["type"].(string)
		v, ok := want[typ]
		require.True(t, ok, "unknown type in %v", o)
		var fields []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			fields = append(fields, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
		}
		var got []string
		for k := range o {
			got = append(got, k)
		}
		slices.Sort(fields)
		slices.Sort(got)
		require.Equal(t, fields, got, "fields of a %s line", typ)
	}
}

func TestInteropGoClientCppServer(t *testing.T) {
	bin := cppUdtperf(t)
	port, stop := cppServer(t, bin)
	// One C++ server for both: it takes tests one after another.
	t.Run("stream", func(t *testing.T) {
		r := runGoClient(t, port, "-t", "2")
		checkRun(t, r, 1, 0)
		require.Equal(t, "cpp", r.sum.Server)
		require.Equal(t, "cpp", r.start.Server)
	})
	t.Run("message", func(t *testing.T) {
		r := runGoClient(t, port, "-t", "1", "-P", "2", "-msg", "1024")
		checkRun(t, r, 2, 1024)
	})
	out := stop()
	sameKeys(t, out)
	tests := ofType(lines(t, out), "test")
	require.Len(t, tests, 2, "C++ server output:\n%s", out)
	require.Equal(t, "go", tests[0]["client"])
	require.Equal(t, "message", tests[1]["mode"])
}

func TestInteropCppClientGoServer(t *testing.T) {
	bin := cppUdtperf(t)
	srv := startServer(t)
	t.Run("stream", func(t *testing.T) {
		r := runCppClient(t, bin, srv.port, 2)
		checkRun(t, r, 1, 0)
		require.Equal(t, "cpp", r.sum.Client)
		require.Equal(t, "go", r.sum.Server)
	})
	t.Run("message", func(t *testing.T) {
		r := runCppClient(t, bin, srv.port, 1, "-P", "2", "-msg", "1024")
		checkRun(t, r, 2, 1024)
	})
	srv.stop()
	tests := ofType(lines(t, srv.out.String()), "test")
	require.Len(t, tests, 2, "server output:\n%s", srv.out.String())
	require.Equal(t, "cpp", tests[0]["client"])
}

// TestCppOutputMatches checks that the C++ program's text and JSON have
// the Go program's shape: field names in JSON, line layouts in text.
func TestCppOutputMatches(t *testing.T) {
	bin := cppUdtperf(t)
	port, stop := cppServer(t, bin)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// Message mode only: 4.11 takes 3-4 s to free the port for a listener of
	// the other type. The other tests check stream mode's JSON.
	out, err := exec.CommandContext(ctx, bin, "-c", "127.0.0.1", "-p", fmt.Sprint(port), "-t", "0.5", "-json", "-P", "2", "-msg", "2000").Output()
	require.NoError(t, err)
	sameKeys(t, string(out))
	text, err := exec.CommandContext(ctx, bin, "-c", "127.0.0.1", "-p", fmt.Sprint(port), "-t", "0.5", "-P", "2", "-msg", "2000").Output()
	require.NoError(t, err)
	sameKeys(t, stop())

	// The Go program's text, for the same kind of test.
	srv := startServer(t)
	o, err := parseArgs([]string{"-c", "127.0.0.1", "-p", fmt.Sprint(srv.port), "-t", "0.5", "-P", "2", "-msg", "2000"})
	require.NoError(t, err)
	var goText syncBuffer
	_, err = runClient(ctx, o, newOutput(&goText, false), nil)
	require.NoError(t, err)
	require.Equal(t, shape(goText.String()), shape(string(text)), "Go:\n%s\nC++:\n%s", goText.String(), text)

	// Bad flags: the same message, exit status 2.
	for _, args := range [][]string{{"-c", "h", "-P", "0"}, {"-s", "-t", "5"}, {"-c", "h", "-mss", "x"}, {}} {
		cmd := exec.CommandContext(ctx, bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		require.Error(t, err)
		require.Equal(t, 2, cmd.ProcessState.ExitCode())
		_, goErr := parseArgs(args)
		require.Error(t, goErr)
		require.Equal(t, "udtperf: "+goErr.Error(), strings.SplitN(stderr.String(), "\n", 2)[0])
	}
}

// shape is text with its numbers, implementation names and runs of spaces
// made alike.
func shape(s string) string {
	s = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`).ReplaceAllString(s, "#")
	s = regexp.MustCompile(`\b(go|cpp)\b`).ReplaceAllString(s, "IMPL")
	return regexp.MustCompile(` +`).ReplaceAllString(s, " ")
}
