package logs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 15, 14, 30, 0, 0, time.UTC)

// openStore opens a store in dir, closed when the test ends.
func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// numbered returns entries n..m-1 with messages "line <i>" one millisecond
// apart.
func numbered(n, m int) []Entry {
	var es []Entry
	for i := n; i < m; i++ {
		es = append(es, Entry{Time: t0.Add(time.Duration(i) * time.Millisecond), Stream: "service/web/web-1", Message: "line " + strconv.Itoa(i)})
	}
	return es
}

func lineNo(t testing.TB, e Entry) int {
	t.Helper()
	f := strings.Fields(e.Message)
	if len(f) < 2 || f[0] != "line" {
		t.Fatalf("unexpected entry %q", e)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("unexpected entry %q", e)
	}
	return n
}

func mustAppend(t testing.TB, s *Store, app string, es ...Entry) {
	t.Helper()
	if err := s.Append(app, es...); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// drain receives until the channel closes; it fails the test if that
// takes more than a few seconds.
func drain(t testing.TB, ch <-chan Entry) []Entry {
	t.Helper()
	var got []Entry
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, e)
		case <-deadline:
			t.Fatalf("channel still open after %d entries", len(got))
		}
	}
}

// receive receives exactly n entries.
func receive(t testing.TB, ch <-chan Entry, n int) []Entry {
	t.Helper()
	got := make([]Entry, 0, n)
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d entries, want %d", len(got), n)
			}
			got = append(got, e)
		case <-deadline:
			t.Fatalf("received %d entries, want %d", len(got), n)
		}
	}
	return got
}

func history(t testing.TB, s *Store, app string, q Query) []Entry {
	t.Helper()
	ch, err := s.Read(context.Background(), app, q)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return drain(t, ch)
}

func render(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.String()
	}
	return out
}

func diskUsage(t testing.TB, dir string) int64 {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, de := range des {
		info, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += info.Size()
	}
	return n
}

func TestStore_Read_History(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	mustAppend(t, s, "myapp",
		Entry{at(0), "system/build", "build started"},
		Entry{at(1), "build/BABCDEFGHI", "Step 1/2 : FROM scratch"},
	)
	mustAppend(t, s, "myapp", Entry{at(2), "service/web/web-zyxwv", "Starting myapp on port 5000\n"})
	mustAppend(t, s, "myapp",
		Entry{at(3), "service/worker/worker-abcde", "error: queue empty"},
		Entry{at(4), "service/web/web-zyxwv", "GET / 200"},
		Entry{at(5), "service/web/web-qwert", "error: upstream timeout"},
		Entry{at(6), "system/web", "process web-zyxwv healthy"},
	)
	mustAppend(t, s, "other", Entry{at(7), "service/web/web-other", "not mine"})

	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"everything", Query{}, []string{
			"2026-01-15T14:30:00Z system/build build started",
			"2026-01-15T14:30:01Z build/BABCDEFGHI Step 1/2 : FROM scratch",
			"2026-01-15T14:30:02Z service/web/web-zyxwv Starting myapp on port 5000",
			"2026-01-15T14:30:03Z service/worker/worker-abcde error: queue empty",
			"2026-01-15T14:30:04Z service/web/web-zyxwv GET / 200",
			"2026-01-15T14:30:05Z service/web/web-qwert error: upstream timeout",
			"2026-01-15T14:30:06Z system/web process web-zyxwv healthy",
		}},
		{"since is inclusive", Query{Since: at(5)}, []string{
			"2026-01-15T14:30:05Z service/web/web-qwert error: upstream timeout",
			"2026-01-15T14:30:06Z system/web process web-zyxwv healthy",
		}},
		{"since after everything", Query{Since: at(60)}, nil},
		{"filter", Query{Filter: "error"}, []string{
			"2026-01-15T14:30:03Z service/worker/worker-abcde error: queue empty",
			"2026-01-15T14:30:05Z service/web/web-qwert error: upstream timeout",
		}},
		{"prefix", Query{Prefix: "service/web/"}, []string{
			"2026-01-15T14:30:02Z service/web/web-zyxwv Starting myapp on port 5000",
			"2026-01-15T14:30:04Z service/web/web-zyxwv GET / 200",
			"2026-01-15T14:30:05Z service/web/web-qwert error: upstream timeout",
		}},
		{"tail", Query{Tail: 2}, []string{
			"2026-01-15T14:30:05Z service/web/web-qwert error: upstream timeout",
			"2026-01-15T14:30:06Z system/web process web-zyxwv healthy",
		}},
		{"tail larger than history", Query{Tail: 100, Prefix: "system/"}, []string{
			"2026-01-15T14:30:00Z system/build build started",
			"2026-01-15T14:30:06Z system/web process web-zyxwv healthy",
		}},
		{"everything combined", Query{Since: at(3), Filter: "error", Prefix: "service/", Tail: 1}, []string{
			"2026-01-15T14:30:05Z service/web/web-qwert error: upstream timeout",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(history(t, s, "myapp", tt.q))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Read(%+v) =\n%s\nwant\n%s", tt.q, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}

	t.Run("nanoseconds are kept", func(t *testing.T) {
		want := t0.Add(123456789)
		mustAppend(t, s, "nanos", Entry{Time: want, Stream: "system/x", Message: "m"})
		got := history(t, s, "nanos", Query{})
		if len(got) != 1 || !got[0].Time.Equal(want) {
			t.Errorf("got %v, want one entry at %v", got, want)
		}
	})
	t.Run("unknown app has no history", func(t *testing.T) {
		if got := history(t, s, "nothing", Query{}); len(got) != 0 {
			t.Errorf("got %v, want nothing", got)
		}
	})
}

func TestStore_Append_ZeroTime(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	before := time.Now()
	in := []Entry{{Stream: "system/x", Message: "now"}}
	mustAppend(t, s, "myapp", in...)
	if !in[0].Time.IsZero() {
		t.Errorf("Append changed the caller's entry: %v", in[0].Time)
	}
	got := history(t, s, "myapp", Query{})
	if len(got) != 1 || got[0].Time.Before(before) || got[0].Time.After(time.Now()) {
		t.Errorf("got %v, want one entry stamped between %v and now", got, before)
	}
}

func TestStore_SizeBound(t *testing.T) {
	const maxBytes = 64 << 10
	msg := strings.Repeat("x", 100)
	tests := []struct {
		name  string
		batch int // entries per Append
		n     int
	}{
		{"one entry per append", 1, 5000},
		{"batches", 37, 5000},
		{"huge batches", 3000, 9000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, Options{MaxBytes: maxBytes})
			var largest int64
			for i := 0; i < tt.n; i += tt.batch {
				var es []Entry
				for j := i; j < min(i+tt.batch, tt.n); j++ {
					es = append(es, Entry{Time: t0.Add(time.Duration(j)), Stream: "service/web/web-1", Message: fmt.Sprintf("line %d %s", j, msg)})
				}
				largest = max(largest, int64(len(appendBatch(nil, "", es))))
				mustAppend(t, s, "myapp", es...)
				if got := diskUsage(t, filepath.Join(dir, "myapp")); got > maxBytes+largest {
					t.Fatalf("after %d entries the app uses %d bytes, want ≤ %d + one record (%d)", i, got, maxBytes, largest)
				}
			}
			got := history(t, s, "myapp", Query{})
			if len(got) == 0 {
				t.Fatal("history is empty")
			}
			// The newest entries are kept, contiguous: only the oldest went.
			first := lineNo(t, got[0])
			for i, e := range got {
				if n := lineNo(t, e); n != first+i {
					t.Fatalf("entry %d is line %d, want %d: not contiguous", i, n, first+i)
				}
			}
			if last := first + len(got) - 1; last != tt.n-1 {
				t.Errorf("last entry is line %d, want %d", last, tt.n-1)
			}
			if first == 0 {
				t.Errorf("nothing was dropped")
			}
			// Dropping one segment at a time keeps most of the budget.
			if kept := len(got) * (len(msg) + 20); tt.batch < 100 && kept < maxBytes/2 {
				t.Errorf("kept %d entries (~%d bytes), want at least half of %d bytes", len(got), kept, maxBytes)
			}
		})
	}

	t.Run("one append larger than the bound", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, dir, Options{MaxBytes: 8 << 10})
		mustAppend(t, s, "myapp", numbered(0, 10)...)
		big := Entry{Time: t0.Add(time.Hour), Stream: "system/x", Message: strings.Repeat("y", 20<<10)}
		mustAppend(t, s, "myapp", big)
		got := history(t, s, "myapp", Query{})
		if len(got) != 1 || got[0].Message != big.Message {
			t.Fatalf("got %d entries, want only the big one", len(got))
		}
		mustAppend(t, s, "myapp", numbered(10, 11)...)
		if got := render(history(t, s, "myapp", Query{})); len(got) != 1 || got[0] != numbered(10, 11)[0].String() {
			t.Errorf("after the big one: %q, want only line 10", got)
		}
	})
}

func TestStore_Reopen(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int64
		n        int
	}{
		{"one segment", 0, 50},
		{"many segments: cursors come from a checkpoint", 64 << 10, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{MaxBytes: tt.maxBytes}
			s, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			sources := map[string]*Source{}
			for _, key := range []string{"c1", "c2", "c3"} {
				if sources[key], err = s.Source("myapp", key); err != nil {
					t.Fatal(err)
				}
			}
			for i, e := range numbered(0, tt.n) {
				key := []string{"c1", "c2", "c3"}[i%3]
				e.Stream = "service/web/" + key
				e.Time = t0.Add(time.Duration(i) * 10 * time.Millisecond)
				if err := sources[key].Append(e); err != nil {
					t.Fatal(err)
				}
				if i%10 == 0 {
					mustAppend(t, s, "myapp", Entry{Time: e.Time, Stream: "system/web", Message: "tick"})
				}
			}
			mustAppend(t, s, System, Entry{Time: t0, Stream: "system/rack", Message: "rack started"})
			if err := s.Forget("myapp", "c3"); err != nil {
				t.Fatal(err)
			}
			wantHistory := render(history(t, s, "myapp", Query{}))
			wantRack := render(history(t, s, System, Query{}))
			wantCursors := cursors(t, s, "myapp", "c1", "c2", "c3")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = openStore(t, dir, opts)
			if got := render(history(t, s, "myapp", Query{})); !slices.Equal(got, wantHistory) {
				t.Errorf("history after reopen: %d entries, want %d", len(got), len(wantHistory))
			}
			if got := render(history(t, s, System, Query{})); !slices.Equal(got, wantRack) {
				t.Errorf("rack log after reopen: %q, want %q", got, wantRack)
			}
			if got := cursors(t, s, "myapp", "c1", "c2", "c3"); got != wantCursors {
				t.Errorf("cursors after reopen:\n%s\nwant\n%s", got, wantCursors)
			}
			if got := cursors(t, s, "myapp", "c3"); !strings.Contains(got, "since=0001-01-01") {
				t.Errorf("forgotten cursor: %s, want none", got)
			}
			mustAppend(t, s, "myapp", Entry{Time: t0.Add(time.Hour), Stream: "system/web", Message: "after reopen"})
			got := history(t, s, "myapp", Query{Tail: 1})
			if len(got) != 1 || got[0].Message != "after reopen" {
				t.Errorf("last entry after reopen: %v", got)
			}
		})
	}
}

// cursors describes the resume state of keys: what a Source would skip.
func cursors(t testing.TB, s *Store, app string, keys ...string) string {
	t.Helper()
	var b strings.Builder
	for _, key := range keys {
		src, err := s.Source(app, key)
		if err != nil {
			t.Fatal(err)
		}
		skip := make([]string, 0, len(src.skip))
		for st, n := range src.skip {
			skip = append(skip, fmt.Sprintf("%d/%x×%d", st.t, st.h, n))
		}
		slices.Sort(skip)
		fmt.Fprintf(&b, "%s since=%s skip=%v\n", key, src.Since().Format(time.RFC3339Nano), skip)
	}
	return b.String()
}

// lastSegment is the path of the newest segment of app.
func lastSegment(t testing.TB, dir, app string) string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, app, "*"+segmentExt))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no segment in %s: %v", dir, err)
	}
	slices.Sort(paths)
	return paths[len(paths)-1]
}

func TestStore_TornRecord(t *testing.T) {
	tests := []struct {
		name string
		// damage changes the last segment, whose last record starts at
		// off and ends at end.
		damage func(t *testing.T, path string, off, end int64)
	}{
		{"cut in the header", truncateAt(3)},
		{"cut after the header", truncateAt(headerSize)},
		{"cut in the body", truncateAt(headerSize + 5)},
		{"one byte short", truncateAt(-1)},
		{"corrupt byte", func(t *testing.T, path string, off, end int64) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte{0xAA}, end-2); err != nil {
				t.Fatal(err)
			}
		}},
		{"zeros after the end", func(t *testing.T, path string, off, end int64) {
			// What a machine crash can leave: the file grew, its data
			// did not reach the disk.
			truncateAt(0)(t, path, off, end)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			src, err := s.Source("myapp", "c1")
			if err != nil {
				t.Fatal(err)
			}
			if err := src.Append(numbered(0, 10)...); err != nil {
				t.Fatal(err)
			}
			path := lastSegment(t, dir, "myapp")
			off := fileSize(t, path)
			if err := src.Append(numbered(10, 12)...); err != nil {
				t.Fatal(err)
			}
			end := fileSize(t, path)
			wantCursor := ""
			s.Close()
			tt.damage(t, path, off, end)

			s = openStore(t, dir, Options{})
			if got := render(history(t, s, "myapp", Query{})); !slices.Equal(got, render(numbered(0, 10))) {
				t.Fatalf("history after the damage:\n%s\nwant lines 0 to 9", strings.Join(got, "\n"))
			}
			if got := fileSize(t, path); got != off {
				t.Errorf("segment is %d bytes, want the torn record cut off at %d", got, off)
			}
			// The cursor is back to line 9: reading the source again from
			// Since stores the torn batch, once.
			src, err = s.Source("myapp", "c1")
			if err != nil {
				t.Fatal(err)
			}
			if err := src.Append(numbered(0, 12)...); err != nil {
				t.Fatal(err)
			}
			want := render(numbered(0, 12))
			if got := render(history(t, s, "myapp", Query{})); !slices.Equal(got, want) {
				t.Errorf("history after appending again:\n%s\nwant lines 0 to 11", strings.Join(got, "\n"))
			}
			wantCursor = cursors(t, s, "myapp", "c1")
			s.Close()
			s = openStore(t, dir, Options{})
			if got := render(history(t, s, "myapp", Query{})); !slices.Equal(got, want) {
				t.Errorf("history after another reopen:\n%s\nwant lines 0 to 11", strings.Join(got, "\n"))
			}
			if got := cursors(t, s, "myapp", "c1"); got != wantCursor {
				t.Errorf("cursor after another reopen: %s, want %s", got, wantCursor)
			}
		})
	}

	t.Run("segment torn from its first record", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, s, "myapp", numbered(0, 3)...)
		s.Close()
		if err := os.Truncate(lastSegment(t, dir, "myapp"), 5); err != nil {
			t.Fatal(err)
		}
		s = openStore(t, dir, Options{})
		if got := history(t, s, "myapp", Query{}); len(got) != 0 {
			t.Errorf("history: %v, want none", got)
		}
		mustAppend(t, s, "myapp", numbered(3, 4)...)
		if got := render(history(t, s, "myapp", Query{})); !slices.Equal(got, render(numbered(3, 4))) {
			t.Errorf("history: %q, want line 3", got)
		}
	})
}

// truncateAt cuts the last record n bytes after its start; n < 0 counts
// from its end.
func truncateAt(n int64) func(t *testing.T, path string, off, end int64) {
	return func(t *testing.T, path string, off, end int64) {
		at := off + n
		if n < 0 {
			at = end + n
		}
		if err := os.Truncate(path, at); err != nil {
			t.Fatal(err)
		}
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

func TestStore_Delete(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	mustAppend(t, s, "myapp", numbered(0, 5)...)
	mustAppend(t, s, "keep", numbered(0, 1)...)
	ch, err := s.Read(context.Background(), "myapp", Query{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	receive(t, ch, 5)

	if err := s.Delete("myapp"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := drain(t, ch); len(got) != 0 {
		t.Errorf("follower got %v after Delete, want its channel closed", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "myapp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("app directory after Delete: %v, want it gone", err)
	}
	if got := history(t, s, "myapp", Query{}); len(got) != 0 {
		t.Errorf("history after Delete: %v, want none", got)
	}
	if got := history(t, s, "keep", Query{}); len(got) != 1 {
		t.Errorf("other app's history after Delete: %v, want its entry", got)
	}
	if err := s.Delete("never-written"); err != nil {
		t.Errorf("Delete of an app without logs: %v", err)
	}

	mustAppend(t, s, "myapp", numbered(7, 8)...)
	if got := render(history(t, s, "myapp", Query{})); !slices.Equal(got, render(numbered(7, 8))) {
		t.Errorf("history of the app written again: %q", got)
	}
	src, err := s.Source("myapp", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !src.Since().IsZero() {
		t.Errorf("cursor after Delete: %v, want none", src.Since())
	}
}

func TestStore_InvalidApp(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	for _, app := range []string{"", ".", "..", "../etc", "a/b", `a\b`, ".hidden", "sp ace", strings.Repeat("a", 256)} {
		t.Run(app, func(t *testing.T) {
			if err := s.Append(app, numbered(0, 1)...); err == nil {
				t.Error("Append: no error")
			}
			if _, err := s.Read(context.Background(), app, Query{}); err == nil {
				t.Error("Read: no error")
			}
			if _, err := s.Source(app, "k"); err == nil {
				t.Error("Source: no error")
			}
			if err := s.Delete(app); err == nil {
				t.Error("Delete: no error")
			}
		})
	}
}

func TestStore_Close(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "myapp", numbered(0, 1)...)
	ch, err := s.Read(context.Background(), "myapp", Query{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	// Nobody receives: Close must still end the reader.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	drain(t, ch)
	if err := s.Append("myapp", numbered(1, 2)...); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Read(context.Background(), "myapp", Query{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func BenchmarkAppend(b *testing.B) {
	s := openStore(b, b.TempDir(), Options{})
	e := Entry{Time: t0, Stream: "service/web/web-zyxwv", Message: strings.Repeat("x", 100)}
	b.SetBytes(int64(len(e.Message)))
	for b.Loop() {
		if err := s.Append("myapp", e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func BenchmarkAppendWithFollower(b *testing.B) {
	s := openStore(b, b.TempDir(), Options{FollowBuffer: 1 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Read(ctx, "myapp", Query{Follow: true})
	if err != nil {
		b.Fatal(err)
	}
	received := make(chan int)
	go func() {
		n := 0
		for range ch {
			n++
		}
		received <- n
	}()
	e := Entry{Time: t0, Stream: "service/web/web-zyxwv", Message: strings.Repeat("x", 100)}
	b.SetBytes(int64(len(e.Message)))
	for b.Loop() {
		if err := s.Append("myapp", e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	cancel()
	<-received
}
