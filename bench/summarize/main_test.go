package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStats(t *testing.T) {
	require.Equal(t, stat{2, 1, 5}, stats([]float64{5, 1, 2}))
	require.Equal(t, stat{2.5, 1, 9}, stats([]float64{9, 1, 2, 3}))
	require.Equal(t, stat{}, stats(nil))
}

func TestSummarize(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	run := func(client, server string, good, msgs, cpu float64) string {
		return `{"type":"start","client":"` + client + `"}` + "\n" +
			`{"type":"interval","goodput_mbps":1}` + "\n" +
			fmt.Sprintf(`{"type":"summary","client":%q,"server":%q,"mode":"message","streams":1,"mss":1500,`+
				`"msg_size":1024,"secs":3,"bytes":1000,"bytes_sent":1000,"goodput_mbps":%g,"msgs_per_s":%g,`+
				`"retrans":7,"client_cpu_s_per_gb":%g,"server_cpu_s_per_gb":%g,"fairness":1}`,
				client, server, good, msgs, cpu, cpu) + "\n"
	}
	files := []string{
		write("go-go.1.json", run("go", "go", 300, 30, 2)),
		write("go-go.2.json", run("go", "go", 100, 10, 4)),
		write("go-go.3.json", run("go", "go", 200, 20, 3)),
		write("cpp-cpp.1.json", run("cpp", "cpp", 100, 10, 6)),
		write("go-cpp.1.json", run("go", "cpp", 50, 5, 1)),
		write("cpp-go.1.json", ""), // the client failed: no output
		write("gotr-gotr.1.json", run("gotr", "gotr", 180, 18, 3)),
	}
	all, err := load(files)
	require.NoError(t, err)
	require.Len(t, all["go-go"].runs, 3)
	require.Equal(t, []string{"cpp-go.1.json"}, all["cpp-go"].failed)

	var b strings.Builder
	require.NoError(t, report(&b, all))
	out := b.String()
	require.Contains(t, out, "message mode, 1024 B messages")
	require.Contains(t, out, "200.0 (100.0-300.0)")
	require.Contains(t, out, "20 (10-30)")
	require.Contains(t, out, "all 1 failed: cpp-go.1.json")
	// Go -> Go: goodput 200 / 100, CPU (3+3) / (6+6), msgs 20 / 10.
	require.Regexp(t, `both ends \(Go -> Go / C\+\+ -> C\+\+\)\s+2\.00\s+0\.50\s+2\.00`, out)
	require.Regexp(t, `Go sender \(Go -> C\+\+ / C\+\+ -> C\+\+\)\s+0\.50\s+0\.17\s+0\.50`, out)
	require.NotContains(t, out, "Go receiver")
	// Through a Transport against the package-level: 180 / 200, CPU 6 / 6.
	require.Contains(t, out, "GoT -> GoT")
	require.Regexp(t, `Transport \(GoT -> GoT / Go -> Go\)\s+0\.90\s+1\.00\s+0\.90`, out)

	require.NotContains(t, out, "least/most stream", "one stream a run")

	// Several streams a run: the least stream's share of the most's.
	multi := func(name string, fair float64) string {
		return write(name, fmt.Sprintf(`{"type":"summary","client":"go","server":"go","mode":"stream","streams":8,`+
			`"mss":1500,"secs":3,"bytes":1000,"bytes_sent":1000,"goodput_mbps":10,"retrans":0,`+
			`"client_cpu_s_per_gb":1,"server_cpu_s_per_gb":1,"fairness":%g}`, fair)+"\n")
	}
	all, err = load([]string{multi("go-go.1.json", 0.9), multi("go-go.2.json", 0.5), multi("go-go.3.json", 0.7)})
	require.NoError(t, err)
	b.Reset()
	require.NoError(t, report(&b, all))
	require.Contains(t, b.String(), "least/most stream")
	require.Contains(t, b.String(), "0.70 (0.50-0.90)")

	_, err = load([]string{write("x-y.1.json", "")})
	require.ErrorContains(t, err, "unknown pair")
	_, err = load([]string{write("go-go.9.json", "not json\n")})
	require.ErrorContains(t, err, "bad line")
}
