package integrationtests

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/trace"
)

// TestTraceAcrossLossyLink runs udtperf for 10 s across the emulated
// 100 Mbit/s, 100 ms link with 1 % random loss, both ends tracing
// (-trace), and draws the two traces with udttrace into one page. It runs
// only when UDT_TRACE_OUT names the directory to leave the traces and the
// page in (bench/trace.sh sets it); docs/trace-100mbit-100ms-1pct.html is
// one such page.
func TestTraceAcrossLossyLink(t *testing.T) {
	out := os.Getenv("UDT_TRACE_OUT")
	if out == "" {
		t.Skip("set UDT_TRACE_OUT to a directory to trace udtperf across the 100 Mbit/s, 100 ms, 1 % link")
	}
	out, err := filepath.Abs(out)
	require.NoError(t, err)
	bins := t.TempDir()
	for _, cmd := range []string{"udtperf", "udttrace"} {
		b, err := exec.Command("go", "build", "-o", filepath.Join(bins, cmd), "github.com/udt-go/udt/examples/"+cmd).CombinedOutput()
		require.NoError(t, err, "%s", b)
	}
	l := tunLink{rate: 100e6, rtt: 100 * time.Millisecond, loss: 0.01}
	p := l.path(t, 1)
	defer func() { require.NoError(t, p.Close()) }()

	srvDir, cliDir := filepath.Join(out, "server"), filepath.Join(out, "client")
	for _, d := range []string{srvDir, cliDir} {
		require.NoError(t, os.RemoveAll(d))
	}
	srv := p.Command(1, filepath.Join(bins, "udtperf"), "-s", "-p", "0", "-trace", srvDir)
	stdout, err := srv.StdoutPipe()
	require.NoError(t, err)
	srv.Stderr = os.Stderr
	require.NoError(t, srv.Start())
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	port := listeningPort(t, stdout)

	cli := p.Command(0, filepath.Join(bins, "udtperf"), "-c", p.Addr(1).String(), "-p", strconv.Itoa(port), "-t", "10", "-trace", cliDir)
	b, err := cli.CombinedOutput()
	t.Logf("udtperf client:\n%s", b)
	require.NoError(t, err)
	time.Sleep(time.Second) // the server's trace ends with its connection

	var files []string
	for _, d := range []string{cliDir, srvDir} {
		fs, err := filepath.Glob(filepath.Join(d, "*.jsonl"))
		require.NoError(t, err)
		require.Len(t, fs, 1, "one trace in %s", d)
		_, err = trace.ReadFile(fs[0])
		require.NoError(t, err)
		files = append(files, fs[0])
	}
	page := filepath.Join(out, "trace.html")
	b, err = exec.Command(filepath.Join(bins, "udttrace"), append([]string{"-o", page}, files...)...).CombinedOutput()
	require.NoError(t, err, "%s", b)
	st, err := os.Stat(page)
	require.NoError(t, err)
	t.Logf("%s: %d bytes", page, st.Size())
}

// listeningPort reads udtperf's output until it says which port it
// listens on.
func listeningPort(t *testing.T, r interface{ Read([]byte) (int, error) }) int {
	t.Helper()
	re := regexp.MustCompile(`listening on port (\d+)`)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			port, err := strconv.Atoi(m[1])
			require.NoError(t, err)
			go func() {
				for sc.Scan() {
					fmt.Fprintln(os.Stderr, "udtperf server:", strings.TrimSpace(sc.Text()))
				}
			}()
			return port
		}
	}
	t.Fatalf("udtperf server said no port: %v", sc.Err())
	return 0
}
