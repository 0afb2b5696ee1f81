package logs

import (
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"slices"
	"sync"
	"time"
)

// ResumeWindow is how far before a source's newest stored entry a resumed
// read starts (Source.Since). It must exceed the largest disorder between
// the order in which a source delivers its lines and the order of their
// timestamps: Docker stamps stdout and stderr lines in two goroutines that
// then race for the log file, so a container's log is sorted by time only
// to within microseconds.
const ResumeWindow = 2 * time.Second

// Source appends the lines of one source (one container, read through the
// runtime's log API) to an app's log, so that reading can resume after a
// restart without duplicating or dropping lines.
//
// The store keeps, for each source key, a cursor: the time T of the newest
// entry stored from it, and a fingerprint (time, hash of stream and
// message) of every entry stored from it with a time ≥ T − ResumeWindow.
// The cursor lives in the log files themselves (each batch record names
// its key; each segment starts with a checkpoint of all cursors), so it is
// exactly as durable as the data: a batch that was written is counted, a
// batch torn by a crash is dropped with its cursor advance, whatever the
// moment the process dies.
//
// The resume contract: open a Source, ask the runtime for the source's
// lines with time ≥ Since() (nanosecond precision, or rounded down), in
// the source's own order, and hand every one of them to Append. Append
// drops the entries it already has (those older than Since, and one
// stored entry for each re-read entry with the same time, stream and
// message) and appends the rest. The log then holds every line of the
// source exactly once, provided that
//
//   - the runtime still has the lines (Docker's own log rotation can lose
//     them while the rack is down),
//   - in the source's order, no line follows a line stamped more than
//     ResumeWindow later than itself (see ResumeWindow),
//   - one Source per key appends at a time: two concurrent Sources for the
//     same key would each append the same new lines.
//
// A key is an opaque string chosen by the caller (a container ID, or the
// shorter process ID); it is stored once per batch. Call Store.Forget when
// the source is gone for good, or its cursor is kept forever.
type Source struct {
	s        *Store
	app, key string
	since    time.Time

	mu sync.Mutex
	// skip holds the fingerprints of stored entries that a resumed read
	// will deliver again, with their multiplicity; nil once no more can
	// come (an entry newer than until was seen).
	skip  map[stamp]int
	until int64
}

// Source returns the appender for the lines of source key in app; see the
// type's documentation for the resume guarantee.
func (s *Store) Source(app, key string) (*Source, error) {
	if key == "" {
		return nil, errors.New("logs: source key is empty")
	}
	a, err := s.lock(app, true)
	if err != nil {
		return nil, err
	}
	defer a.mu.Unlock()
	src := &Source{s: s, app: app, key: key}
	c := a.keys[key]
	if c == nil {
		return src, nil
	}
	c.compact()
	src.since = time.Unix(0, c.horizon()).UTC()
	src.until = c.last + int64(ResumeWindow)
	src.skip = make(map[stamp]int, len(c.seen))
	for _, st := range c.seen {
		src.skip[st]++
	}
	return src, nil
}

// Since is the time from which the source's lines must be read again:
// zero (read everything) for a source the store has never seen.
func (src *Source) Since() time.Time { return src.since }

// Append appends the entries the store does not already have, as one
// batch; see Source for which ones it drops. An entry with a zero Time is
// never a re-read: it is appended, stamped with the current time. If
// Append fails, nothing of the batch is stored and the same entries may be
// passed again.
func (src *Source) Append(entries ...Entry) error {
	src.mu.Lock()
	defer src.mu.Unlock()
	kept := entries
	for i, e := range entries {
		if !src.seen(e) {
			if len(kept) < len(entries) {
				kept = append(kept, e)
			}
			continue
		}
		if len(kept) == len(entries) {
			kept = append(make([]Entry, 0, len(entries)), entries[:i]...)
		}
	}
	return src.s.append(src.app, src.key, kept)
}

// seen reports whether e is a re-read of an entry already stored.
func (src *Source) seen(e Entry) bool {
	if src.since.IsZero() || e.Time.IsZero() {
		return false
	}
	if e.Time.Before(src.since) {
		return true
	}
	if src.skip == nil {
		return false
	}
	t := e.Time.UnixNano()
	if t > src.until {
		src.skip = nil
		return false
	}
	k := stamp{t, fingerprint(e.Stream, e.Message)}
	switch n := src.skip[k]; n {
	case 0:
		return false
	case 1:
		delete(src.skip, k)
	default:
		src.skip[k] = n - 1
	}
	return true
}

// cursor is how far the store has the lines of one source key.
type cursor struct {
	last int64 // time of the newest stored entry, Unix nanoseconds
	// seen holds every stored entry with a time ≥ last − ResumeWindow,
	// and possibly older ones not yet compacted away.
	seen  []stamp
	limit int // len(seen) at which to compact
}

type stamp struct {
	t int64
	h uint64
}

func newCursor(t int64) *cursor { return &cursor{last: t} }

func (c *cursor) add(t int64, h uint64) {
	if t > c.last {
		c.last = t
	}
	if t < c.horizon() {
		return
	}
	c.seen = append(c.seen, stamp{t, h})
	if len(c.seen) >= c.limit {
		c.compact()
	}
}

func (c *cursor) horizon() int64 {
	if c.last < math.MinInt64+int64(ResumeWindow) {
		return math.MinInt64
	}
	return c.last - int64(ResumeWindow)
}

func (c *cursor) compact() {
	h := c.horizon()
	c.seen = slices.DeleteFunc(c.seen, func(s stamp) bool { return s.t < h })
	c.limit = max(2*len(c.seen), 64)
}

// fingerprint identifies an entry's content: 64-bit FNV-1a of stream,
// a separator and message. It is stored, so it must never change.
func fingerprint[S string | []byte](stream, msg S) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < len(stream); i++ {
		h = (h ^ uint64(stream[i])) * prime
	}
	h = (h ^ 0xff) * prime
	for i := 0; i < len(msg); i++ {
		h = (h ^ uint64(msg[i])) * prime
	}
	return h
}

// appendCheckpoint encodes every cursor as one record.
func appendCheckpoint(b []byte, keys map[string]*cursor) []byte {
	b, start := beginRecord(b, kindCheckpoint)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		c := keys[k]
		c.compact()
		b = appendString(b, k)
		b = binary.AppendVarint(b, c.last)
		b = binary.AppendUvarint(b, uint64(len(c.seen)))
		for _, s := range c.seen {
			b = binary.AppendVarint(b, s.t)
			b = binary.LittleEndian.AppendUint64(b, s.h)
		}
	}
	return endRecord(b, start)
}

func readCheckpoint(body []byte) (map[string]*cursor, bool) {
	d := decoder{b: body[1:]}
	n := d.uvarint()
	keys := make(map[string]*cursor)
	for i := uint64(0); i < n && !d.bad; i++ {
		k := string(d.bytes())
		c := newCursor(d.varint())
		m := d.uvarint()
		for j := uint64(0); j < m && !d.bad; j++ {
			c.seen = append(c.seen, stamp{d.varint(), d.uint64()})
		}
		c.limit = max(2*len(c.seen), 64)
		keys[k] = c
	}
	return keys, !d.bad
}
