package main

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

const pageStyle = `body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; }
td.n { text-align: right; }
p.note { color: #555; font-size: 0.85em; }`

// writePage returns the HTML page: the title, a table of the files and
// the charts.
func writePage(ends []*end, cs []chart) ([]byte, error) {
	var b bytes.Buffer
	var names []string
	for _, d := range ends {
		names = append(names, d.label+" ("+d.name()+")")
	}
	title := "udttrace: " + strings.Join(names, ", ")
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>%s</title>\n<style>\n%s\n</style>\n</head>\n<body>\n",
		esc(title), pageStyle)
	fmt.Fprintf(&b, "<h1>%s</h1>\n", esc(title))
	writeTable(&b, ends)
	first := ends[0].h.Start.Add(-ends[0].offset)
	fmt.Fprintf(&b, "<p class=\"note\">Time counts from %s, the earliest start; each file is placed by its header's start "+
		"(on different hosts, as far as their clocks agree). Rates from packet counts take %d-byte payloads where a "+
		"trace has no handshake.</p>\n", esc(first.UTC().Format(time.RFC3339Nano)), 1500-44)
	for i := range cs {
		fmt.Fprintf(&b, "<h2>%s</h2>\n%s", esc(cs[i].title), cs[i].svg())
	}
	b.WriteString("</body>\n</html>\n")
	return b.Bytes(), nil
}

// writeTable writes a row of figures for each file.
func writeTable(b *bytes.Buffer, ends []*end) {
	b.WriteString("<table>\n<tr><th>file</th><th>role</th><th>socket ID</th><th>local → remote</th><th>start (UTC)</th>" +
		"<th>length</th><th>packets sent</th><th>retransmitted</th><th>received</th><th>discarded</th>" +
		"<th>declared lost</th><th>timeouts</th><th>ended</th><th>notes</th></tr>\n")
	for _, d := range ends {
		ended := d.closedBy
		if d.closeErr != "" {
			ended += ": " + d.closeErr
		}
		if ended == "" {
			ended = "(no close: cut short)"
		}
		var notes []string
		if d.h.NoPackets {
			notes = append(notes, "no packet events")
		}
		if d.bad > 0 {
			notes = append(notes, fmt.Sprintf("%d lines skipped; the first: %v", d.bad, d.badErr))
		}
		fmt.Fprintf(b, "<tr><td>%s</td><td>%s</td><td class=\"n\">%d</td><td>%s → %s</td><td>%s</td><td class=\"n\">%.3f s</td>",
			esc(d.name()), esc(d.h.Role.String()), d.h.SocketID, esc(d.h.Local), esc(d.h.Remote),
			esc(d.h.Start.UTC().Format(time.RFC3339Nano)), (d.last - d.offset).Seconds())
		fmt.Fprintf(b, "<td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%d</td><td class=\"n\">%d</td>"+
			"<td class=\"n\">%d</td><td class=\"n\">%d</td><td>%s</td><td>%s</td></tr>\n",
			d.sent, d.retrans, d.recv, d.discarded, d.lost, d.expiries, esc(ended), esc(strings.Join(notes, "; ")))
	}
	b.WriteString("</table>\n")
}
