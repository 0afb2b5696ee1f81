// Package logs keeps every app's log (its processes' output and the rack's
// events about it) in a bounded, durable store on disk, and streams it to
// readers, live if they ask.
//
// On disk, app A's log is the directory <dir>/A/ of numbered segment files
// (0000000000000001.log, 0000000000000002.log, …; the format is described
// in record.go). Appends go to the newest segment with one write(2) per
// Append call, so a line stored is never lost when the daemon is killed;
// segments are fsynced when they are finished and at Close, so a machine
// crash can lose only the newest lines, and never corrupts older ones. A
// write torn by a crash is detected by its checksum and cut off when the
// app's log is next opened. When an append would take the app past
// Options.MaxBytes, the oldest segments are deleted: the app keeps its
// newest MaxBytes or so, whole lines only.
//
// The rack's own log is kept under the app name System.
//
// A Store may be used from many goroutines. Appends to one app are
// serialized; readers never hold up appends (see Read).
package logs

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// System is the app name under which the rack keeps its own log (SOCKET
// /system/logs). The rack refuses it as an app name, so no app collides.
const System = "system"

// ErrClosed is returned by every method of a Store once Close was called.
var ErrClosed = errors.New("logs: store closed")

const (
	defaultMaxBytes     = 64 << 20
	defaultFollowBuffer = 10000
	// segmentsPerApp sets a segment's size to MaxBytes/segmentsPerApp:
	// deleting the oldest one frees that much, and reopening an app reads
	// about that much to rebuild its cursors.
	segmentsPerApp  = 8
	minSegmentBytes = 4 << 10
	segmentExt      = ".log"
)

// Options tune a Store. The zero value gives the defaults.
type Options struct {
	// MaxBytes bounds each app's files on disk. Default 64 MiB: days of a
	// chatty app. A single Append larger than that is still stored, alone.
	MaxBytes int64
	// FollowBuffer is how many entries a following reader may lag behind
	// the writer before it is cut off. Default 10000.
	FollowBuffer int
	// Log receives the repairs made when an app's log is opened (a torn
	// record cut off). Default: discarded.
	Log *slog.Logger
}

// Store is the log store of a rack: one directory holding one
// sub-directory per app. Only one Store may use a directory at a time.
type Store struct {
	dir  string
	opts Options

	mu     sync.Mutex
	apps   map[string]*appLog
	closed bool

	// readers counts the goroutines started by Read; Close waits for them.
	readers sync.WaitGroup
}

// Open opens the store in dir, creating dir (mode 0700) if needed. Apps'
// logs are opened on first use.
func Open(dir string, opts Options) (*Store, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = defaultMaxBytes
	}
	if opts.FollowBuffer <= 0 {
		opts.FollowBuffer = defaultFollowBuffer
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("logs: opening store: %w", err)
	}
	return &Store{dir: dir, opts: opts, apps: make(map[string]*appLog)}, nil
}

// Close stops every reader (their channels close), syncs and closes the
// files, and waits for the readers' goroutines to return.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	apps := slices.Collect(maps.Values(s.apps))
	s.mu.Unlock()
	var errs []error
	for _, a := range apps {
		a.mu.Lock()
		a.dead = true
		a.stopReaders()
		errs = append(errs, a.closeFile())
		a.mu.Unlock()
	}
	s.readers.Wait()
	return errors.Join(errs...)
}

// Append appends entries to app's log as one batch. An entry with a zero
// Time is stamped with the current time. When Append returns nil the
// entries are in the store and have been handed to every following
// reader; when it fails none of them is stored.
func (s *Store) Append(app string, entries ...Entry) error {
	return s.append(app, "", entries)
}

func (s *Store) append(app, key string, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	if slices.ContainsFunc(entries, func(e Entry) bool { return e.Time.IsZero() }) {
		now := time.Now()
		entries = slices.Clone(entries)
		for i := range entries {
			if entries[i].Time.IsZero() {
				entries[i].Time = now
			}
		}
	}
	a, err := s.lock(app, true)
	if err != nil {
		return err
	}
	defer a.mu.Unlock()
	a.scratch = appendBatch(a.scratch[:0], key, entries)
	err = a.write(a.scratch)
	if cap(a.scratch) > 1<<20 {
		a.scratch = nil // do not keep a huge batch's buffer
	}
	if err != nil {
		return fmt.Errorf("logs: appending to %s: %w", app, err)
	}
	if key != "" {
		c := a.keys[key]
		for _, e := range entries {
			t := e.Time.UnixNano()
			if c == nil {
				c = newCursor(t)
				a.keys[key] = c
			}
			c.add(t, fingerprint(e.Stream, e.Message))
		}
	}
	a.publish(entries)
	return nil
}

// Forget drops the cursor of source key in app (see Source): call it once
// the source is gone for good. Its lines stay in the log.
func (s *Store) Forget(app, key string) error {
	a, err := s.lock(app, true)
	if err != nil {
		return err
	}
	defer a.mu.Unlock()
	if a.keys[key] == nil {
		return nil
	}
	a.scratch = appendForget(a.scratch[:0], key)
	if err := a.write(a.scratch); err != nil {
		return fmt.Errorf("logs: forgetting %s of %s: %w", key, app, err)
	}
	delete(a.keys, key)
	return nil
}

// Delete removes app's log from disk and ends its readers (their channels
// close). The app's log may be written again afterwards, from empty.
func (s *Store) Delete(app string) error {
	a, err := s.lock(app, false)
	if err != nil {
		return err
	}
	defer a.mu.Unlock()
	a.dead = true
	a.stopReaders()
	err = errors.Join(a.closeFile(), os.RemoveAll(a.dir))
	// Only now may a new appLog for the name be made: it would read the
	// directory being removed.
	s.mu.Lock()
	delete(s.apps, app)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("logs: deleting %s: %w", app, err)
	}
	return nil
}

// lock returns app's log locked, opened if load is set.
func (s *Store) lock(app string, load bool) (*appLog, error) {
	if err := checkApp(app); err != nil {
		return nil, err
	}
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		a := s.apps[app]
		if a == nil {
			a = &appLog{
				dir:      filepath.Join(s.dir, app),
				maxBytes: s.opts.MaxBytes,
				follow:   s.opts.FollowBuffer,
				readers:  make(map[*reader]struct{}),
			}
			s.apps[app] = a
		}
		s.mu.Unlock()
		a.mu.Lock()
		if a.dead {
			// Deleted or closed meanwhile: look again.
			a.mu.Unlock()
			continue
		}
		if load && !a.loaded {
			if err := a.load(s.opts.Log); err != nil {
				a.mu.Unlock()
				return nil, fmt.Errorf("logs: opening %s: %w", app, err)
			}
			a.loaded = true
		}
		return a, nil
	}
}

// checkApp refuses names that are not a plain directory name.
func checkApp(app string) error {
	ok := app != "" && len(app) <= 255 && app[0] != '.'
	for i := 0; ok && i < len(app); i++ {
		c := app[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Errorf("logs: invalid app name %q", app)
	}
	return nil
}

// appLog is one app's log. Every field is guarded by mu.
type appLog struct {
	mu       sync.Mutex
	dir      string
	maxBytes int64
	follow   int // Options.FollowBuffer

	loaded bool
	dead   bool // deleted or store closed: look the app up again

	segs  []segment // oldest first; the last one is being written
	total int64     // bytes in segs
	// f is the last segment, open for appending; nil when the next write
	// must start a new segment (none yet, or the last one is unusable).
	f *os.File

	keys    map[string]*cursor
	readers map[*reader]struct{}
	scratch []byte
}

type segment struct {
	seq  uint64
	size int64
	base int64 // size of its checkpoint record
}

func (a *appLog) path(seq uint64) string {
	return filepath.Join(a.dir, fmt.Sprintf("%016x%s", seq, segmentExt))
}

func (a *appLog) segmentBytes() int64 {
	return max(a.maxBytes/segmentsPerApp, minSegmentBytes)
}

// load reads the app's segments from disk and rebuilds the cursors from
// the newest checkpoint and the records after it. A torn tail of the last
// segment is cut off; a last segment with no valid checkpoint is removed.
func (a *appLog) load(log *slog.Logger) error {
	a.segs, a.total, a.f = nil, 0, nil
	a.keys = make(map[string]*cursor)
	dirents, err := os.ReadDir(a.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, de := range dirents {
		name := de.Name()
		if strings.HasSuffix(name, ".tmp") {
			// A segment whose creation did not finish: it holds only a
			// checkpoint, which the previous segment's records rebuild.
			os.Remove(filepath.Join(a.dir, name))
			continue
		}
		hex, ok := strings.CutSuffix(name, segmentExt)
		seq, err := strconv.ParseUint(hex, 16, 64)
		if !ok || err != nil || len(hex) != 16 {
			continue
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		a.segs = append(a.segs, segment{seq: seq, size: info.Size()})
		a.total += info.Size()
	}
	slices.SortFunc(a.segs, func(x, y segment) int { return cmp.Compare(x.seq, y.seq) })

	// The cursors are those of the newest checkpoint (normally the first
	// record of the last segment) plus the records after it.
	start := 0
	for i := len(a.segs) - 1; i >= 0; i-- {
		ok, err := a.loadCheckpoint(a.segs[i])
		if err != nil {
			return err
		}
		if ok {
			start = i
			break
		}
	}
	for i := start; i < len(a.segs); i++ {
		if err := a.replay(i, log); err != nil {
			return err
		}
	}
	n := len(a.segs)
	if n == 0 {
		return nil
	}
	last := a.segs[n-1]
	switch {
	case last.base > 0:
		a.f, err = os.OpenFile(a.path(last.seq), os.O_WRONLY|os.O_APPEND, 0)
		return err
	case last.size == 0:
		// Torn from its first record on: a segment that was never used.
		a.segs = a.segs[:n-1]
		return os.Remove(a.path(last.seq))
	}
	// Records without a checkpoint cannot be appended to; the next write
	// starts a new segment.
	return nil
}

// loadCheckpoint sets the cursors from seg's checkpoint, if seg starts
// with a valid one.
func (a *appLog) loadCheckpoint(seg segment) (bool, error) {
	f, err := os.Open(a.path(seg.seq))
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := newScanner(f, seg.size)
	body, ok := sc.next()
	if sc.err != nil {
		return false, sc.err
	}
	if !ok || body[0] != kindCheckpoint {
		return false, nil
	}
	keys, ok := readCheckpoint(body)
	if ok {
		a.keys = keys
	}
	return ok, nil
}

// replay applies the records of segment i after its checkpoint to the
// cursors. In the last segment, a torn or corrupt tail is truncated away
// so that appends continue valid data.
func (a *appLog) replay(i int, log *slog.Logger) error {
	seg := &a.segs[i]
	f, err := os.Open(a.path(seg.seq))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := newScanner(f, seg.size)
	for n := 0; ; n++ {
		body, ok := sc.next()
		if !ok {
			break
		}
		switch body[0] {
		case kindCheckpoint:
			if n == 0 {
				seg.base = sc.off
			}
		case kindBatch:
			if br, ok := readBatch(body); ok && len(br.key) > 0 {
				a.replayBatch(&br)
			}
		case kindForget:
			d := decoder{b: body[1:]}
			delete(a.keys, string(d.bytes()))
		}
	}
	if sc.err != nil {
		return sc.err
	}
	if sc.off < seg.size && i == len(a.segs)-1 {
		log.Warn("cutting off torn log record", "file", f.Name(), "offset", sc.off, "bytes", seg.size-sc.off)
		if err := os.Truncate(f.Name(), sc.off); err != nil {
			return err
		}
		a.total -= seg.size - sc.off
		seg.size = sc.off
	}
	return nil
}

func (a *appLog) replayBatch(br *batchReader) {
	key := string(br.key)
	c := a.keys[key]
	for {
		t, stream, msg, ok := br.next()
		if !ok {
			return
		}
		if c == nil {
			c = newCursor(t)
			a.keys[key] = c
		}
		c.add(t, fingerprint(stream, msg))
	}
}

// write appends one or more whole records to the last segment, starting
// a new segment first if the last one is full, and deleting the oldest
// ones to stay within maxBytes. On error nothing of b is left on disk.
func (a *appLog) write(b []byte) error {
	n := int64(len(b))
	last := len(a.segs) - 1
	// A segment holds segmentBytes of records after its checkpoint, and
	// always at least one.
	if a.f == nil || a.segs[last].size > a.segs[last].base && a.segs[last].size-a.segs[last].base+n > a.segmentBytes() {
		if err := a.rotate(); err != nil {
			return err
		}
		last = len(a.segs) - 1
	}
	for len(a.segs) > 1 && a.total+n > a.maxBytes {
		if err := os.Remove(a.path(a.segs[0].seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		a.total -= a.segs[0].size
		a.segs = a.segs[1:]
		last--
	}
	if _, err := a.f.Write(b); err != nil {
		// A partial record would end the segment for readers: remove it,
		// or give up on this segment.
		if terr := a.f.Truncate(a.segs[last].size); terr != nil {
			a.closeFile()
		}
		return err
	}
	a.segs[last].size += n
	a.total += n
	return nil
}

// rotate finishes the last segment and starts a new one, which begins
// with a checkpoint of the cursors. The new file appears whole or not at
// all: it is written under a temporary name, synced and renamed.
func (a *appLog) rotate() error {
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return err
	}
	// The new checkpoint counts the records of the finished segment: they
	// must be on disk before it is.
	if a.f != nil {
		if err := a.f.Sync(); err != nil {
			return err
		}
	}
	seq := uint64(1)
	if n := len(a.segs); n > 0 {
		seq = a.segs[n-1].seq + 1
	}
	cp := appendCheckpoint(nil, a.keys)
	path := a.path(seq)
	if err := writeSynced(path+".tmp", cp); err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		os.Remove(path + ".tmp")
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		os.Remove(path)
		return err
	}
	syncDir(a.dir)
	a.closeFile() // synced above: an error here cannot lose a record

	a.f = f
	size := int64(len(cp))
	a.segs = append(a.segs, segment{seq: seq, size: size, base: size})
	a.total += size
	return nil
}

func (a *appLog) closeFile() error {
	if a.f == nil {
		return nil
	}
	err := errors.Join(a.f.Sync(), a.f.Close())
	a.f = nil
	return err
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a rename in dir durable; best effort, as some systems
// cannot sync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
