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
	require.Len(t, all.pairs["go-go"].runs, 3)
	require.Equal(t, []string{"cpp-go.1.json"}, all.pairs["cpp-go"].failed)

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
	require.NotContains(t, out, "raw UDP", "no ceiling files")

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

func TestSummarizeCeiling(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	run := func(client, server string, good float64) string {
		return write(client+"-"+server+".1.json", fmt.Sprintf(`{"type":"summary","client":%q,"server":%q,"mode":"stream",`+
			`"streams":1,"mss":1500,"secs":3,"bytes":1000,"bytes_sent":1000,"goodput_mbps":%g,"retrans":0,`+
			`"client_cpu_s_per_gb":1,"server_cpu_s_per_gb":1,"fairness":1}`, client, server, good)+"\n")
	}
	ceil := func(name string, plain, mmsg, gso float64) string {
		line := func(mode string, good float64) string {
			return fmt.Sprintf(`{"type":"ceiling","mode":%q,"size":1472,"t":2,"secs":1.9,"sent":10,"received":10,"bytes":14720,`+
				`"goodput_mbps":%g,"dgrams_per_s":%g,"cpu_s":1,"cpu_s_per_gb":0.5,"rcvbuf":1,"sndbuf":1}`, mode, good, good*85) + "\n"
		}
		return write(name, line("plain", plain)+line("mmsg", mmsg)+line("gso", gso))
	}
	files := []string{
		run("go", "go", 8000),
		run("cpp", "cpp", 4000),
		ceil("ceiling.1.json", 900, 5000, 50000),
		ceil("ceiling.2.json", 1100, 3000, 30000),
	}
	all, err := load(files)
	require.NoError(t, err)
	require.Len(t, all.ceiling["gso"].runs, 2)
	var b strings.Builder
	require.NoError(t, report(&b, all))
	out := b.String()
	require.Contains(t, out, "raw UDP over loopback (bench/udpceiling): 1472 B datagrams, 2 s a mode")
	require.Regexp(t, `gso\+gro\s+2\s+40000\.0 \(30000\.0-50000\.0\)\s+3400000 \(2550000-4250000\)\s+0\.50 \(0\.50-0\.50\)`, out)
	require.Regexp(t, `plain\s+2\s+1000\.0 \(900\.0-1100\.0\)`, out)
	// Go -> Go 8000 of 40000 and of 4000; C++ -> C++ 4000 of each.
	require.Regexp(t, `Go -> Go\s+0\.20\s+2\.00`, out)
	require.Regexp(t, `C\+\+ -> C\+\+\s+0\.10\s+1\.00`, out)
	require.Contains(t, out, "at most 0.989")

	// A mode the system lacks, and a run with only some modes.
	files = append(files[:2], write("ceiling.3.json",
		`{"type":"ceiling","mode":"gso","size":1472,"error":"not supported here"}`+"\n"+
			`{"type":"ceiling","mode":"mmsg","size":1472,"secs":2,"goodput_mbps":5000}`+"\n"))
	all, err = load(files)
	require.NoError(t, err)
	b.Reset()
	require.NoError(t, report(&b, all))
	out = b.String()
	require.Contains(t, out, "all 1 failed: not supported here")
	require.Regexp(t, `Go -> Go\s+-\s+1\.60`, out)

	_, err = load([]string{write("ceiling.4.json", "{\n")})
	require.ErrorContains(t, err, "bad line")
}
