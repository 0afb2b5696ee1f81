package logs

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// containerLog is a container's log as Docker returns it: in file order,
// which is time order except where the stdout and stderr copiers raced,
// with equal timestamps for the chunks of a long line, twin lines, and
// gaps longer than ResumeWindow.
func containerLog() []Entry {
	at := func(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }
	const web = "service/web/web-zyxwv"
	return []Entry{
		{at(0), web, "booting"},
		{at(10), web, "chunk"},
		{at(10), web, "chunk"},
		{at(10), web, "chunk"},
		{at(10), web, "end of the long line"},
		{at(25), web, "stdout line"},
		{at(20), web, "stderr line, stamped before the stdout line"},
		{at(30), web, "twin"},
		{at(30), web, "twin"},
		{at(1000), web, "a millisecond later"},
		{at(3_000_000), web, "three seconds later"},
		{at(3_000_000), web, "three seconds later, again"},
		{at(3_000_001), web, "last"},
	}
}

// since is what Docker's since filter returns: the lines not before t, in
// file order.
func since(log []Entry, t time.Time) []Entry {
	var out []Entry
	for _, e := range log {
		if !e.Time.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

func exact(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%s %s %s", e.Time.Format(time.RFC3339Nano), e.Stream, e.Message)
	}
	return out
}

// appendIn appends es through src in batches of n.
func appendIn(t *testing.T, src *Source, es []Entry, n int) {
	t.Helper()
	for i := 0; i < len(es); i += n {
		if err := src.Append(es[i:min(i+n, len(es))]...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSource_Resume kills the reader of a container at every point, in
// every way, and checks that resuming as Source documents stores each
// line exactly once.
func TestSource_Resume(t *testing.T) {
	log := containerLog()
	want := exact(log)
	crashes := []struct {
		name string
		// crash stops s after the source's first k lines were appended
		// in batches of n, and damages the files as the crash would.
		crash func(t *testing.T, s *Store, dir string)
	}{
		{"clean stop", func(t *testing.T, s *Store, dir string) { s.Close() }},
		{"killed mid-write", func(t *testing.T, s *Store, dir string) {
			// The last batch is torn: neither it nor its cursor counts.
			s.Close()
			path := lastSegment(t, dir, "myapp")
			if err := os.Truncate(path, fileSize(t, path)-1); err != nil {
				t.Fatal(err)
			}
		}},
	}
	rereads := []struct {
		name string
		read func(log []Entry, src *Source) []Entry
	}{
		{"from Since", func(log []Entry, src *Source) []Entry { return since(log, src.Since()) }},
		{"everything", func(log []Entry, src *Source) []Entry { return log }},
	}
	for _, crash := range crashes {
		for _, reread := range rereads {
			for _, batch := range []int{1, 2, 5} {
				for k := 0; k <= len(log); k++ {
					name := fmt.Sprintf("%s/reread %s/batches of %d/after %d lines", crash.name, reread.name, batch, k)
					t.Run(name, func(t *testing.T) {
						dir := t.TempDir()
						s, err := Open(dir, Options{})
						if err != nil {
							t.Fatal(err)
						}
						mustAppend(t, s, "myapp", Entry{Time: t0, Stream: "system/web", Message: "unrelated"})
						src, err := s.Source("myapp", "c0ffee")
						if err != nil {
							t.Fatal(err)
						}
						if got := src.Since(); !got.IsZero() {
							t.Fatalf("Since of a new source = %v, want zero", got)
						}
						appendIn(t, src, log[:k], batch)
						crash.crash(t, s, dir)

						s = openStore(t, dir, Options{})
						src, err = s.Source("myapp", "c0ffee")
						if err != nil {
							t.Fatal(err)
						}
						appendIn(t, src, reread.read(log, src), batch)
						got := exact(history(t, s, "myapp", Query{Prefix: "service/"}))
						if !slices.Equal(got, want) {
							t.Errorf("log after resuming:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
						}
					})
				}
			}
		}
	}
}

// TestSource_ResumeTwice crashes, resumes, crashes again part-way through
// the re-read, and resumes again.
func TestSource_ResumeTwice(t *testing.T) {
	log := containerLog()
	want := exact(log)
	for k1 := 0; k1 <= len(log); k1++ {
		for k2 := 0; k2 <= len(log); k2++ {
			dir := t.TempDir()
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			src, err := s.Source("myapp", "c0ffee")
			if err != nil {
				t.Fatal(err)
			}
			appendIn(t, src, log[:k1], 1)
			s.Close()

			s, err = Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			src, err = s.Source("myapp", "c0ffee")
			if err != nil {
				t.Fatal(err)
			}
			reread := since(log, src.Since())
			appendIn(t, src, reread[:min(k2, len(reread))], 1)
			s.Close()

			s, err = Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			src, err = s.Source("myapp", "c0ffee")
			if err != nil {
				t.Fatal(err)
			}
			appendIn(t, src, since(log, src.Since()), 3)
			got := exact(history(t, s, "myapp", Query{}))
			s.Close()
			if !slices.Equal(got, want) {
				t.Fatalf("crash after %d lines, then after %d more: log\n%s\nwant\n%s", k1, k2, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	}
}

func TestSource_Keys(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	if _, err := s.Source("myapp", ""); err == nil {
		t.Error("Source with an empty key: no error")
	}
	a, err := s.Source("myapp", "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Append(Entry{Time: t0.Add(time.Hour), Stream: "service/web/a", Message: "from a"}); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "myapp", Entry{Time: t0.Add(2 * time.Hour), Stream: "system/web", Message: "no key"})
	// Cursors are per key and per app: b and the same key in another app
	// are new sources.
	for _, c := range []struct{ app, key string }{{"myapp", "b"}, {"other", "a"}} {
		src, err := s.Source(c.app, c.key)
		if err != nil {
			t.Fatal(err)
		}
		if got := src.Since(); !got.IsZero() {
			t.Errorf("Since of %s in %s = %v, want zero", c.key, c.app, got)
		}
	}
	src, err := s.Source("myapp", "a")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := src.Since(), t0.Add(time.Hour-ResumeWindow); !got.Equal(want) {
		t.Errorf("Since of a = %v, want %v", got, want)
	}
	if err := s.Forget("myapp", "a"); err != nil {
		t.Fatal(err)
	}
	if src, _ := s.Source("myapp", "a"); !src.Since().IsZero() {
		t.Errorf("Since of a after Forget = %v, want zero", src.Since())
	}
}
