package main

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// A small line-chart builder: a chart is an SVG with a title, x and y
// axes with ticks, grid lines and labels, its series drawn in the plot
// area, and a legend below.

// point is a value y at x seconds; y2 is a band's other edge.
type point struct{ x, y, y2 float64 }

// style is how a series is drawn.
type style uint8

const (
	lines   style = iota // straight segments from point to point
	steps                // each value holds until the next point
	band                 // the area between y and y2
	markers              // a circle at each point
)

// series is one quantity of one trace.
type series struct {
	class string // names the quantity: "series-goodput"
	label string // in the legend
	color string
	dash  string // stroke-dasharray ("": solid), telling traces apart
	style style
	pts   []point
}

// chart is one SVG: series over a time axis from 0 to xMax seconds.
type chart struct {
	id, title, yLabel string
	note              string // said when there is no series
	xMax              float64
	// yCap, if more than 0, tops the y axis where the largest values
	// would flatten the rest; those are cut off.
	yCap   float64
	series []series
}

// The layout, in pixels.
const (
	chartW     = 960
	plotLeft   = 70
	plotRight  = chartW - 20
	plotTop    = 34
	plotBottom = plotTop + 230
	legendTop  = plotBottom + 48
	legendCols = 4
	legendColW = (chartW - plotLeft) / legendCols
	legendRowH = 18
)

// scale maps a domain [d0, d1] onto the pixels [r0, r1].
type scale struct{ d0, d1, r0, r1 float64 }

func (s scale) at(v float64) float64 {
	if s.d1 == s.d0 {
		return s.r0
	}
	return s.r0 + (v-s.d0)/(s.d1-s.d0)*(s.r1-s.r0)
}

// ticks returns round values from 0 to the first at or past top, about n
// of them: steps of 1, 2 or 5 times a power of ten.
func ticks(top float64, n int) []float64 {
	if !(top > 0) || math.IsInf(top, 0) {
		top = 1
	}
	raw := top / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	ts := []float64{0}
	for k := 1.0; ts[len(ts)-1] < top*(1-1e-9); k++ {
		ts = append(ts, k*step)
	}
	return ts
}

// tickLabel formats v with as many decimals as the step between ticks
// needs.
func tickLabel(v, step float64) string {
	dec := 0
	if step > 0 && step < 1 {
		dec = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

// svg renders the chart.
func (c *chart) svg() string {
	var b strings.Builder
	rows := (len(c.series) + legendCols - 1) / legendCols
	h := legendTop + rows*legendRowH + 6
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" id="%s" class="chart" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		c.id, chartW, h, chartW, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartW, h)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", plotLeft, esc(c.title))
	x := scale{0, c.xMax, plotLeft, plotRight}
	if !(c.xMax > 0) {
		x.d1 = 1
	}
	xt := ticks(x.d1, 10)
	x.d1 = xt[len(xt)-1]
	top := c.yMax()
	if c.yCap > 0 && c.yCap < top {
		top = c.yCap
		fmt.Fprintf(&b, `<text x="%d" y="20" text-anchor="end" fill="#666666">values above %s %s cut off</text>`+"\n",
			plotRight, esc(strconv.FormatFloat(c.yCap, 'g', 3, 64)), esc(c.yLabel))
	}
	yt := ticks(top, 5)
	y := scale{0, yt[len(yt)-1], plotBottom, plotTop}
	axes(&b, x, xt, "time (s)")
	axes(&b, y, yt, c.yLabel)
	fmt.Fprintf(&b, `<clipPath id="clip-%s"><rect x="%d" y="%d" width="%d" height="%d"/></clipPath>`+"\n",
		c.id, plotLeft, plotTop, plotRight-plotLeft, plotBottom-plotTop)
	fmt.Fprintf(&b, `<g clip-path="url(#clip-%s)">`+"\n", c.id)
	for i := range c.series {
		draw(&b, &c.series[i], x, y)
	}
	b.WriteString("</g>\n")
	if len(c.series) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#666666">%s</text>`+"\n", plotLeft+10, plotTop+20, esc(c.note))
	}
	c.legend(&b)
	b.WriteString("</svg>\n")
	return b.String()
}

// yMax is the largest value of the chart's series.
func (c *chart) yMax() float64 {
	top := 0.0
	for _, s := range c.series {
		for _, p := range s.pts {
			top = max(top, p.y, p.y2)
		}
	}
	return top
}

// axes draws the axis of s (horizontal if its pixels run left to right):
// the line, a grid line and a label at each tick, and the axis' name.
func axes(b *strings.Builder, s scale, ts []float64, name string) {
	horizontal := s.r1 > s.r0
	step := 0.0
	if len(ts) > 1 {
		step = ts[1] - ts[0]
	}
	for _, v := range ts {
		p := s.at(v)
		label := esc(tickLabel(v, step))
		if horizontal {
			fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e0e0e0"/>`, p, plotTop, p, plotBottom)
			fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333333"/>`, p, plotBottom, p, plotBottom+5)
			fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", p, plotBottom+18, label)
		} else {
			fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/>`, plotLeft, p, plotRight, p)
			fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333333"/>`, plotLeft-5, p, plotLeft, p)
			fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", plotLeft-8, p+4, label)
		}
	}
	if horizontal {
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333333"/>`, plotLeft, plotBottom, plotRight, plotBottom)
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", (plotLeft+plotRight)/2, plotBottom+36, esc(name))
	} else {
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333333"/>`, plotLeft, plotTop, plotLeft, plotBottom)
		fmt.Fprintf(b, `<text transform="translate(16 %d) rotate(-90)" text-anchor="middle">%s</text>`+"\n",
			(plotTop+plotBottom)/2, esc(name))
	}
}

// draw draws series s in the plot area.
func draw(b *strings.Builder, s *series, x, y scale) {
	pts := s.pts
	if s.style != markers {
		pts = thin(pts, x)
	}
	dash := ""
	if s.dash != "" {
		dash = ` stroke-dasharray="` + s.dash + `"`
	}
	switch s.style {
	case lines, steps:
		fmt.Fprintf(b, `<polyline class="series %s" fill="none" stroke="%s" stroke-width="1.5"%s points="`, s.class, s.color, dash)
		writePoints(b, pts, x, y, s.style == steps, false)
		b.WriteString("\"/>\n")
	case band:
		fmt.Fprintf(b, `<polygon class="series %s" fill="%s" fill-opacity="0.25" stroke="none" points="`, s.class, s.color)
		writePoints(b, pts, x, y, true, false)
		writePoints(b, pts, x, y, true, true)
		b.WriteString("\"/>\n")
	case markers:
		fmt.Fprintf(b, `<g class="series %s" fill="%s">`, s.class, s.color)
		for _, p := range pts {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="4"/>`, x.at(p.x), y.at(p.y))
		}
		b.WriteString("</g>\n")
	}
}

// writePoints writes pts as a points attribute's pairs: as steps (a
// value holds until the next point) if step, and if lower along y2
// backwards, a band's lower edge.
func writePoints(b *strings.Builder, pts []point, x, y scale, step, lower bool) {
	n := len(pts)
	for i := range n {
		k, prev := i, i-1
		if lower {
			k, prev = n-1-i, n-i
		}
		p := pts[k]
		v := p.y
		if lower {
			v = p.y2
		}
		if step && i > 0 {
			q := pts[prev]
			if lower {
				fmt.Fprintf(b, "%.1f,%.1f ", x.at(q.x), y.at(v)) // p's value runs to q
			} else {
				fmt.Fprintf(b, "%.1f,%.1f ", x.at(p.x), y.at(q.y)) // q's value runs to p
			}
		}
		fmt.Fprintf(b, "%.1f,%.1f ", x.at(p.x), y.at(v))
	}
}

// thin keeps, of the points that fall in one pixel column, the first,
// the lowest, the highest and the last: a line of many thousand points
// looks the same with four a column.
func thin(pts []point, x scale) []point {
	if len(pts) <= 4*(plotRight-plotLeft) {
		return pts
	}
	var out []point
	for i := 0; i < len(pts); {
		col := math.Floor(x.at(pts[i].x))
		j, lo, hi := i, i, i
		for ; j < len(pts) && math.Floor(x.at(pts[j].x)) == col; j++ {
			if pts[j].y < pts[lo].y {
				lo = j
			}
			if pts[j].y > pts[hi].y {
				hi = j
			}
		}
		keep := []int{i, lo, hi, j - 1}
		if lo > hi {
			keep[1], keep[2] = hi, lo
		}
		for k, idx := range keep {
			if k == 0 || idx != keep[k-1] {
				out = append(out, pts[idx])
			}
		}
		i = j
	}
	return out
}

// legend draws a sample and the label of each series, in rows below the
// plot.
func (c *chart) legend(b *strings.Builder) {
	for i, s := range c.series {
		lx := plotLeft + (i%legendCols)*legendColW
		ly := legendTop + (i/legendCols)*legendRowH
		switch s.style {
		case markers:
			fmt.Fprintf(b, `<circle cx="%d" cy="%d" r="4" fill="%s"/>`, lx+12, ly-4, s.color)
		case band:
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="24" height="10" fill="%s" fill-opacity="0.25"/>`, lx, ly-9, s.color)
		default:
			dash := ""
			if s.dash != "" {
				dash = ` stroke-dasharray="` + s.dash + `"`
			}
			fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`,
				lx, ly-4, lx+24, ly-4, s.color, dash)
		}
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", lx+30, ly, esc(s.label))
	}
}

// esc escapes text for XML, and so for SVG inside HTML.
func esc(s string) string { return html.EscapeString(s) }
