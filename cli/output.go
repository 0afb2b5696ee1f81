package cli

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// The output grammar of the Convox CLI (spec §3.1), which scripts and users
// read, so it is matched byte for byte.

// startf begins a step: "Creating myapp... " with no newline, so that ok
// finishes the line. On failure the line stays unfinished and the error goes
// to stderr, as in Convox.
func startf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format+"... ", args...)
}

// ok finishes a step begun by startf: "OK", or "OK, <id>" when the step
// produced something worth naming.
func ok(w io.Writer, id ...string) {
	if len(id) > 0 && id[0] != "" {
		fmt.Fprintf(w, "OK, %s\n", id[0])
		return
	}
	fmt.Fprintln(w, "OK")
}

// writeTable writes a header row and rows, each column padded to its widest
// cell plus two spaces, except the last, which is not padded (so a row whose
// last cell is empty ends in spaces, as Convox's do).
func writeTable(w io.Writer, header []string, rows [][]string) error {
	widths := make([]int, len(header))
	for _, row := range append([][]string{header}, rows...) {
		for i, cell := range row {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(cell))
			}
		}
	}
	var b strings.Builder
	for _, row := range append([][]string{header}, rows...) {
		for i := range widths {
			cell := ""
			if i < len(row) {
				cell = row[i]
			}
			b.WriteString(cell)
			if i < len(widths)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)+2))
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// field is one line of an info block.
type field struct {
	key, value string
}

// writeInfo writes an info block: each key padded to the longest key plus
// one space ("Release RABCDEFGHI", as the project's issue shows it), then its
// value; further lines of a multi-line value are indented to the value
// column.
func writeInfo(w io.Writer, fields []field) error {
	width := 0
	for _, f := range fields {
		width = max(width, utf8.RuneCountInString(f.key))
	}
	width++
	var b strings.Builder
	for _, f := range fields {
		lines := strings.Split(f.value, "\n")
		b.WriteString(f.key)
		b.WriteString(strings.Repeat(" ", width-utf8.RuneCountInString(f.key)))
		b.WriteString(lines[0])
		b.WriteByte('\n')
		for _, l := range lines[1:] {
			b.WriteString(strings.Repeat(" ", width))
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ago humanises t as seen at now, in the words of go-humanize, which the
// Convox CLI uses ("2 minutes ago", "3 hours ago", "2 days ago"), except
// that under a second, or in the future (a rack clock slightly ahead), it
// is "just now". A zero time is an empty cell.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	const (
		day   = 24 * time.Hour
		week  = 7 * day
		month = 30 * day
		year  = 12 * month
	)
	d := now.Sub(t)
	if d < time.Second {
		return "just now"
	}
	for _, u := range []struct {
		below, unit time.Duration
		name        string
	}{
		{time.Minute, time.Second, "second"},
		{time.Hour, time.Minute, "minute"},
		{day, time.Hour, "hour"},
		{week, day, "day"},
		{month, week, "week"},
		{year, month, "month"},
		{18 * month, year, "year"},
	} {
		if d < u.below {
			if n := int(d / u.unit); n > 1 {
				return fmt.Sprintf("%d %ss ago", n, u.name)
			}
			return "1 " + u.name + " ago"
		}
	}
	return fmt.Sprintf("%d years ago", max(2, int(d/year)))
}

// elapsed is how long something took, rounded to the second ("2m0s"), or
// "" while it has not ended.
func elapsed(start, end time.Time) string {
	if start.IsZero() || end.IsZero() {
		return ""
	}
	return end.Sub(start).Round(time.Second).String()
}

// progress is where a command reports its steps: stdout, or stderr under
// --id, so that stdout carries only the release id (spec §3.1:
// release=$(convox build --id)).
func progress(env *Env, id bool) io.Writer {
	if id {
		return env.Stderr
	}
	return env.Stdout
}

// printID writes the result of an --id command: the id alone, with no
// newline.
func printID(env *Env, id bool, release string) {
	if id {
		io.WriteString(env.Stdout, release)
	}
}
