package logs

import (
	"strings"
	"time"
)

// Entry is one log line.
type Entry struct {
	// Time is when the line was written; stored to the nanosecond.
	Time time.Time
	// Stream names the line's origin, as Convox does: service/<service>/<process>
	// for processes (services, one-off runs, timers), build/<build> for
	// builds, system/<topic> for the rack's events about the app.
	Stream string
	// Message is the line itself, with or without its newline.
	Message string
}

// String renders the entry as Convox prints a log line with its prefix
// (spec/convox.md §3.6): the UTC time to the second, the stream and the
// message without its line ending, e.g.
//
//	2026-01-15T14:30:00Z service/web/web-zyxwv Starting myapp on port 5000
func (e Entry) String() string {
	return e.Time.UTC().Format(time.RFC3339) + " " + e.Stream + " " + strings.TrimRight(e.Message, "\r\n")
}

// Query selects the entries Read returns. The zero Query returns the
// whole history and stops.
type Query struct {
	// Since keeps entries with a Time at or after it; zero keeps all.
	Since time.Time
	// Follow keeps the channel open after the history, for the entries
	// appended from then on.
	Follow bool
	// Filter keeps entries whose Message contains it.
	Filter string
	// Prefix keeps entries whose Stream starts with it, e.g.
	// "service/web/".
	Prefix string
	// Tail, when positive, keeps only the last Tail entries of the
	// history (after the other filters). Live entries are not limited.
	Tail int
}

func (q *Query) match(e Entry) bool {
	return !e.Time.Before(q.Since) &&
		strings.HasPrefix(e.Stream, q.Prefix) &&
		strings.Contains(e.Message, q.Filter)
}
