package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/harness"
	"github.com/udt-go/udt/internal/leaktest"
	"github.com/udt-go/udt/trace"
)

// TestMain fails the run when goroutines outlive the tests, once closing
// connections have had time to wind down.
func TestMain(m *testing.M) { leaktest.Main(m) }

// lossyTraces traces both ends of an 8 MiB transfer over 127.0.0.1,
// across a relay of 100 Mbit/s and 10 ms that drops 2 % of the data
// packets, and returns the two files once both connections have ended.
func lossyTraces(t *testing.T) []string {
	t.Helper()
	dir, err := trace.NewDir(t.TempDir(), trace.Options{})
	require.NoError(t, err)
	c, _ := harness.TracedTransfer(t, dir.Tracer, 100e6, 10*time.Millisecond, 0.02, 8<<20)
	require.NoError(t, dir.Close())
	require.NotZero(t, c.Stats().Total.PktRetrans, "2 % loss and no retransmission")
	return dir.Files()
}

// TestChartLossyTransfer charts a real lossy transfer: the page holds an
// SVG per chart, each well-formed XML with the series expected of such a
// transfer, and drawn: rasterised, each chart has hundreds of coloured
// pixels.
func TestChartLossyTransfer(t *testing.T) {
	files := lossyTraces(t)
	out := filepath.Join(t.TempDir(), "out.html")
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"-o", out, "-bin", "20ms"}, files...), &stdout, &stderr)
	require.Zero(t, code, "stderr: %s", stderr.String())
	require.Contains(t, stdout.String(), "wrote "+out)
	page, err := os.ReadFile(out)
	require.NoError(t, err)
	html := string(page)
	require.NotContains(t, html, "<script")
	require.NotRegexp(t, `(src|href)=`, html, "self-contained")
	for _, f := range files {
		require.Contains(t, html, filepath.Base(f), "the title and table name the files")
	}
	require.Contains(t, html, "client (")
	require.Contains(t, html, "server (")

	svgs := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(html, -1)
	require.Len(t, svgs, 5)
	counts := map[string]int{}
	for _, svg := range svgs {
		for class, n := range seriesPoints(t, svg) {
			counts[class] += n
		}
	}
	for _, class := range []string{"series-sent", "series-retrans", "series-goodput", "series-period-rate",
		"series-recv-rate", "series-bandwidth", "series-cwnd", "series-flow-window", "series-in-flight",
		"series-rtt", "series-rttvar", "series-retransmits", "series-loss-nak", "series-loss-gap"} {
		require.GreaterOrEqual(t, counts[class], 10, "points of %s (all: %v)", class, counts)
	}

	t.Run("raster", func(t *testing.T) {
		bin := rasterizer(t)
		for i, svg := range svgs {
			n := colouredPixels(t, bin, svg)
			require.Greater(t, n, 300, "chart %d has %d coloured pixels: blank", i, n)
		}
	})
}

// seriesPoints parses svg as XML and returns the points of each series'
// element by its series-* class: a polyline's or polygon's pairs, a
// group's circles.
func seriesPoints(t *testing.T, svg string) map[string]int {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(svg))
	counts := map[string]int{}
	group := "" // the series of the markers group open
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return counts
		}
		require.NoError(t, err, "SVG is not well-formed XML")
		switch el := tok.(type) {
		case xml.StartElement:
			class := seriesClass(el)
			switch {
			case el.Name.Local == "g" && class != "":
				group = class
			case el.Name.Local == "circle" && group != "":
				counts[group]++
			case class != "":
				counts[class] += len(strings.Fields(attr(el, "points")))
			}
		case xml.EndElement:
			if el.Name.Local == "g" {
				group = ""
			}
		}
	}
}

func attr(el xml.StartElement, name string) string {
	for _, a := range el.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// seriesClass is the series-* class of el, "" if none.
func seriesClass(el xml.StartElement) string {
	for _, c := range strings.Fields(attr(el, "class")) {
		if strings.HasPrefix(c, "series-") {
			return c
		}
	}
	return ""
}

// rasterizer returns the path of rsvg-convert; without it the test skips,
// or fails with UDT_RASTER=require (as CI sets it).
func rasterizer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("rsvg-convert")
	if err == nil {
		return bin
	}
	if os.Getenv("UDT_RASTER") == "require" {
		t.Fatal("rsvg-convert is missing (Debian: apt-get install librsvg2-bin), and UDT_RASTER=require")
	}
	t.Skip("rsvg-convert is missing (Debian: apt-get install librsvg2-bin; set UDT_RASTER=require to make this a failure)")
	return ""
}

// colouredPixels rasterises svg with rsvg-convert and counts the pixels
// of a colour: the series' (axes, grid and text are grey).
func colouredPixels(t *testing.T, bin, svg string) int {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "chart.svg"), filepath.Join(dir, "chart.png")
	require.NoError(t, os.WriteFile(in, []byte(svg), 0o644))
	msg, err := exec.CommandContext(t.Context(), bin, "-o", out, in).CombinedOutput()
	require.NoError(t, err, "rsvg-convert: %s", msg)
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	return countColoured(img)
}

func countColoured(img image.Image) int {
	n := 0
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			hi, lo := max(cr, cg, cb)>>8, min(cr, cg, cb)>>8
			if hi-lo > 60 {
				n++
			}
		}
	}
	return n
}

// TestRunErrors: bad arguments and files fail, naming the fault.
func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	notTrace := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notTrace, []byte("hello\n"), 0o644))
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: udttrace"},
		{[]string{"-bin", "0s", "x.jsonl"}, 2, "-bin 0s: must be more than 0"},
		{[]string{"-x"}, 2, "flag provided but not defined"},
		{[]string{filepath.Join(dir, "missing.jsonl")}, 1, "no such file"},
		{[]string{notTrace}, 1, "notes.txt: trace: not a udt-trace/1 file"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, c.code, run(append([]string{"-o", filepath.Join(dir, "o.html")}, c.args...), &stdout, &stderr), "%q", c.args)
		require.Contains(t, stderr.String(), c.want, "%q", c.args)
	}
}

// TestDamagedTrace charts what can be read of a file cut short and with a
// broken line, and says what was skipped.
func TestDamagedTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cut.jsonl")
	lines := `{"format":"udt-trace/1","role":"client","socket_id":1,"local":"a","remote":"b","start":"2026-01-02T15:04:05Z"}
{"t":100,"ev":"packet_sent","seq":1,"size":1000}
{"t":oops}
{"t":200000,"ev":"metrics","rtt":20000,"rtt_var":1000,"period":10,"in_flight":3}
{"t":300000,"ev":"packet_sent","seq":2,"si`
	require.NoError(t, os.WriteFile(path, []byte(lines), 0o644))
	page, ends, err := render([]string{path}, 100*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, 2, ends[0].bad)
	require.Contains(t, string(page), "2 lines skipped; the first: trace: line 3")
	require.Contains(t, string(page), "(no close: cut short)")
	require.Contains(t, string(page), `class="series series-sent"`)
}

// TestTicks: round steps from 0 to at or past the top.
func TestTicks(t *testing.T) {
	for _, c := range []struct {
		top  float64
		n    int
		want []float64
	}{
		{1, 5, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
		{9.3, 5, []float64{0, 2, 4, 6, 8, 10}},
		{1234, 5, []float64{0, 500, 1000, 1500}},
		{0, 5, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
		{0.031, 3, []float64{0, 0.02, 0.04}},
	} {
		got := ticks(c.top, c.n)
		require.InDeltaSlice(t, c.want, got, 1e-9, "ticks(%g, %d) = %v", c.top, c.n, got)
	}
	require.Equal(t, "0.25", tickLabel(0.25, 0.05))
	require.Equal(t, "1500", tickLabel(1500, 500))
	require.Equal(t, "0.040", tickLabel(0.04, 0.005))
}

// TestThin keeps four points a pixel column at most, the extremes and
// both ends among them.
func TestThin(t *testing.T) {
	x := scale{0, 1, plotLeft, plotRight}
	var pts []point
	for i := range 100_000 {
		pts = append(pts, point{x: float64(i) / 100_000, y: float64(i % 97)})
	}
	got := thin(pts, x)
	require.LessOrEqual(t, len(got), 4*(plotRight-plotLeft+1))
	require.Equal(t, pts[0], got[0])
	require.Equal(t, pts[len(pts)-1], got[len(got)-1])
	hi := 0.0
	for _, p := range got {
		hi = max(hi, p.y)
	}
	require.Equal(t, 96.0, hi)
}
