package logs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"
)

// CutOff is the message of the last entry a following reader receives
// when it fell more than Options.FollowBuffer entries behind; its stream
// is "system/logs".
const CutOff = "log stream cut off: reader too slow"

// Read streams app's log on the returned channel: first the history, the
// stored entries matching q in the order they were appended (oldest
// first; the last q.Tail of them if q.Tail > 0), then, if q.Follow, each
// matching entry as it is appended. The history ends exactly where the
// live entries start: no entry is missed or sent twice in between. An app
// with no log yet has an empty history.
//
// Readers never slow down Append: a following reader takes appended
// entries into its own queue and sends them from there. If it lags more
// than Options.FollowBuffer entries behind, it stops taking entries, and
// once the caller has received everything up to that point, it sends an
// entry with stream system/logs and message CutOff, and closes the
// channel.
//
// The channel is closed, and the one goroutine behind it returns, when the
// history has been sent and q.Follow is false, when ctx is done, after a
// cut-off, when the app is deleted or when the store is closed. A caller
// that stops receiving before then must cancel ctx.
func (s *Store) Read(ctx context.Context, app string, q Query) (<-chan Entry, error) {
	a, err := s.lock(app, true)
	if err != nil {
		return nil, err
	}
	files, err := a.snapshot()
	if err != nil {
		a.mu.Unlock()
		return nil, fmt.Errorf("logs: reading %s: %w", app, err)
	}
	r := &reader{
		q:      q,
		since:  unixNano(q.Since),
		prefix: []byte(q.Prefix),
		filter: []byte(q.Filter),
		limit:  a.follow,
		stop:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
		live:   q.Follow,
	}
	a.readers[r] = struct{}{}
	s.readers.Add(1)
	a.mu.Unlock()

	out := make(chan Entry, 64)
	go func() {
		defer s.readers.Done()
		defer close(out)
		defer a.unsubscribe(r)
		defer closeFiles(files)
		r.run(ctx, out, files)
	}()
	return out, nil
}

// segmentFile is a segment as it stood when a reader started: entries
// past size are the reader's live ones.
type segmentFile struct {
	f    *os.File
	size int64
}

// snapshot opens every segment, so that the reader keeps its history even
// if the segment is deleted meanwhile.
func (a *appLog) snapshot() ([]segmentFile, error) {
	files := make([]segmentFile, 0, len(a.segs))
	for _, seg := range a.segs {
		f, err := os.Open(a.path(seg.seq))
		if err != nil {
			closeFiles(files)
			return nil, err
		}
		files = append(files, segmentFile{f, seg.size})
	}
	return files, nil
}

func closeFiles(files []segmentFile) {
	for _, sf := range files {
		sf.f.Close()
	}
}

// publish hands appended entries to the following readers; it never
// blocks on them.
func (a *appLog) publish(entries []Entry) {
	for r := range a.readers {
		if r.live && r.take(entries) {
			r.signal()
		}
	}
}

// stopReaders ends every reader of the app.
func (a *appLog) stopReaders() {
	for r := range a.readers {
		close(r.stop)
		delete(a.readers, r)
	}
}

func (a *appLog) unsubscribe(r *reader) {
	a.mu.Lock()
	delete(a.readers, r)
	a.mu.Unlock()
}

// reader is one call to Read.
type reader struct {
	q              Query
	since          int64 // q.Since in Unix nanoseconds
	prefix, filter []byte
	limit          int // Options.FollowBuffer

	// stop is closed (by the appLog, once) when the app is deleted or the
	// store closed.
	stop chan struct{}
	// wake has room for one signal: the queue has entries or cut is set.
	wake chan struct{}

	// live is guarded by the appLog's mu: the reader takes appended
	// entries.
	live bool

	mu    sync.Mutex
	queue []Entry
	spare []Entry // the previous queue, for reuse
	cut   bool
}

// take queues the entries that match; it reports whether there is
// something new for the reader. Called with the appLog's mu held.
func (r *reader) take(entries []Entry) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.queue)
	for _, e := range entries {
		if !r.q.match(e) {
			continue
		}
		if len(r.queue) >= r.limit {
			r.cut = true
			r.live = false
			return true
		}
		r.queue = append(r.queue, e)
	}
	return len(r.queue) > n
}

func (r *reader) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *reader) run(ctx context.Context, out chan<- Entry, files []segmentFile) {
	send := func(e Entry) bool {
		select {
		case out <- e:
			return true
		case <-ctx.Done():
			return false
		case <-r.stop:
			return false
		}
	}
	if !r.history(files, send) || !r.q.Follow {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.stop:
			return
		case <-r.wake:
		}
		r.mu.Lock()
		batch := r.queue
		r.queue = r.spare
		cut := r.cut
		r.mu.Unlock()
		for _, e := range batch {
			if !send(e) {
				return
			}
		}
		clear(batch)
		r.mu.Lock()
		r.spare = batch[:0]
		r.mu.Unlock()
		if cut {
			send(Entry{Time: time.Now().UTC(), Stream: "system/logs", Message: CutOff})
			return
		}
	}
}

// history sends the stored entries that match, up to where the segments
// ended when Read was called. It reports false if the reader must stop.
func (r *reader) history(files []segmentFile, send func(Entry) bool) bool {
	var tail []Entry // with q.Tail: a ring of the last entries, oldest at head
	head := 0
	keep := func(e Entry) bool {
		switch {
		case r.q.Tail <= 0:
			return send(e)
		case len(tail) < r.q.Tail:
			tail = append(tail, e)
		default:
			tail[head] = e
			head = (head + 1) % len(tail)
		}
		return true
	}
	var sc *scanner
	for _, sf := range files {
		section := io.NewSectionReader(sf.f, 0, sf.size)
		if sc == nil {
			sc = newScanner(section, sf.size)
		} else {
			sc.reset(section, sf.size)
		}
		for {
			body, ok := sc.next()
			if !ok {
				break
			}
			if body[0] != kindBatch {
				continue
			}
			br, _ := readBatch(body)
			for {
				t, stream, msg, ok := br.next()
				if !ok {
					break
				}
				if t < r.since || !bytes.HasPrefix(stream, r.prefix) || !bytes.Contains(msg, r.filter) {
					continue
				}
				if !keep(Entry{Time: time.Unix(0, t).UTC(), Stream: string(stream), Message: string(msg)}) {
					return false
				}
			}
		}
		if sc.err != nil {
			msg := "log history incomplete: " + sc.err.Error()
			if !keep(Entry{Time: time.Now().UTC(), Stream: "system/logs", Message: msg}) {
				return false
			}
		}
	}
	for i := range tail {
		if !send(tail[(head+i)%len(tail)]) {
			return false
		}
	}
	return true
}

// unixNano is t in Unix nanoseconds, the zero time (and any time before
// 1678) being the smallest.
func unixNano(t time.Time) int64 {
	if t.Before(time.Unix(0, math.MinInt64)) {
		return math.MinInt64
	}
	return t.UnixNano()
}
