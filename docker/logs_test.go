package docker

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/singlehost/convox/engine"
)

func TestRuntime_ProcessLogs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.start(engine.ProcessSpec{
		Name:    h.name("talker"),
		Command: []string{"bash", "-c", "echo out1; echo err1 >&2; echo out2; sleep 1; echo late"},
	})

	// Follow sees the line printed a second after it began reading, and
	// ends when the process does.
	rc, err := h.r.ProcessLogs(h.ctx(), p.ID, engine.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	followed := make(chan []string)
	go func() {
		defer rc.Close()
		followed <- lines(rc)
	}()
	select {
	case got := <-followed:
		if !sameLines(got, []string{"out1", "err1", "out2", "late"}) {
			t.Errorf("follow: got %q, want out1, err1, out2, late", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("follow: the stream did not end with the process")
	}

	tests := []struct {
		name string
		opts engine.LogOptions
		want []string
	}{
		{"all", engine.LogOptions{}, []string{"out1", "err1", "out2", "late"}},
		// Docker copies stdout and stderr separately: only the late line has
		// a sure place.
		{"tail", engine.LogOptions{Tail: 1}, []string{"late"}},
		{"since", engine.LogOptions{Since: time.Now().Add(time.Hour)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := h.with(t)
			got := lines(strings.NewReader(h.logs(p.ID, tt.opts)))
			if !sameLines(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("timestamps and since", func(t *testing.T) {
		h := h.with(t)
		stamped := lines(strings.NewReader(h.logs(p.ID, engine.LogOptions{Timestamps: true})))
		if len(stamped) != 4 {
			t.Fatalf("got %q, want 4 lines", stamped)
		}
		var late time.Time
		for _, l := range stamped {
			ts, text, _ := strings.Cut(l, " ")
			at, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			if text == "late" {
				late = at
			}
		}
		// The late line came a second after the others: since its time,
		// it is all there is.
		got := lines(strings.NewReader(h.logs(p.ID, engine.LogOptions{Since: late})))
		if !slices.Equal(got, []string{"late"}) {
			t.Errorf("since %v: got %q, want [late]", late, got)
		}
	})

	t.Run("tty", func(t *testing.T) {
		h := h.with(t)
		id := h.rawContainer(&container.Config{Image: baseImage, Tty: true, Cmd: []string{"bash", "-c", "echo on a terminal"}})
		h.waitExit(id)
		if got := h.logs(id, engine.LogOptions{}); got != "on a terminal\r\n" {
			t.Errorf("got %q, want the raw terminal output", got)
		}
	})
}

// lines reads r to its end, one string per line.
func lines(r io.Reader) []string {
	var ls []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		ls = append(ls, sc.Text())
	}
	return ls
}

// sameLines compares outputs whose stdout and stderr lines may interleave
// either way: the stdout lines must keep their order, and all must be there.
func sameLines(got, want []string) bool {
	a, b := slices.Clone(got), slices.Clone(want)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		return false
	}
	notErr := func(s string) bool { return !strings.HasPrefix(s, "err") }
	return slices.Equal(filter(got, notErr), filter(want, notErr))
}

func filter(ss []string, keep func(string) bool) []string {
	var out []string
	for _, s := range ss {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// recorder records each Write it gets.
type recorder struct{ writes []string }

func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

// TestDemux: lines come out whole, each stream's own, and the lines Docker
// sent in one read come out in one write, in the order they were
// completed; a partial line at the end, or one of maxLine bytes, is a line
// of its own.
func TestDemux(t *testing.T) {
	type frame struct {
		stderr bool
		text   string
	}
	tests := []struct {
		name string
		// reads are what each Read of Docker's stream returns.
		reads [][]frame
		want  []string
	}{
		{
			name:  "one line per read",
			reads: [][]frame{{{false, "a\n"}}, {{true, "b\n"}}, {{false, "c\n"}}},
			want:  []string{"a\n", "b\n", "c\n"},
		},
		{
			name:  "lines read together are one write",
			reads: [][]frame{{{false, "a\n"}, {true, "b\n"}, {false, "c\n"}}, {{false, "d\n"}}},
			want:  []string{"a\nb\nc\n", "d\n"},
		},
		{
			name:  "lines split across frames stay whole",
			reads: [][]frame{{{false, "hel"}}, {{true, "oops\n"}}, {{false, "lo\nwor"}}, {{false, "ld\n"}}},
			want:  []string{"oops\n", "hello\n", "world\n"},
		},
		{
			name:  "split lines read together",
			reads: [][]frame{{{false, "hel"}, {true, "oops\n"}, {false, "lo\nwor"}, {false, "ld\n"}}},
			want:  []string{"oops\nhello\nworld\n"},
		},
		{
			name:  "several lines in a frame",
			reads: [][]frame{{{false, "1\n2\n3\n"}}},
			want:  []string{"1\n2\n3\n"},
		},
		{
			name:  "last lines without newline",
			reads: [][]frame{{{false, "done\nno newline"}}, {{true, "err tail"}}},
			want:  []string{"done\n", "no newline\nerr tail\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var src chunks
			for _, read := range tt.reads {
				var mux bytes.Buffer
				out, errw := stdcopy.NewStdWriter(&mux, stdcopy.Stdout), stdcopy.NewStdWriter(&mux, stdcopy.Stderr)
				for _, f := range read {
					w := out
					if f.stderr {
						w = errw
					}
					io.WriteString(w, f.text)
				}
				src = append(src, mux.Bytes())
			}
			var rec recorder
			if err := demux(&rec, &src, false); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rec.writes, tt.want) {
				t.Errorf("got writes %q, want %q", rec.writes, tt.want)
			}
		})
	}

	t.Run("tty", func(t *testing.T) {
		var rec recorder
		if err := demux(&rec, &chunks{[]byte("a\r\n"), []byte("b")}, true); err != nil {
			t.Fatal(err)
		}
		if want := []string{"a\r\n", "b\n"}; !slices.Equal(rec.writes, want) {
			t.Errorf("got %q, want %q", rec.writes, want)
		}
	})

	t.Run("long line", func(t *testing.T) {
		var rec recorder
		lw := &lineWriter{lines: &lineBatch{w: &rec}}
		io.WriteString(lw, strings.Repeat("x", maxLine-1))
		if len(rec.writes) != 0 || len(lw.lines.buf) != 0 {
			t.Fatalf("a partial line shorter than maxLine was passed on: %d writes", len(rec.writes))
		}
		io.WriteString(lw, "x")
		lw.lines.push()
		if len(rec.writes) != 1 || rec.writes[0] != strings.Repeat("x", maxLine)+"\n" {
			t.Errorf("a partial line of maxLine bytes was held back: %d writes", len(rec.writes))
		}
	})

	t.Run("corrupt stream", func(t *testing.T) {
		var rec recorder
		err := demux(&rec, strings.NewReader("\x07\x00\x00\x00\x00\x00\x00\x01x"), false)
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("got %v, want an error for an unknown stream", err)
		}
	})
}

// chunks reads as its chunks, one per Read.
type chunks [][]byte

func (c *chunks) Read(p []byte) (int, error) {
	if len(*c) == 0 {
		return 0, io.EOF
	}
	n := copy(p, (*c)[0])
	if n == len((*c)[0]) {
		*c = (*c)[1:]
	} else {
		(*c)[0] = (*c)[0][n:]
	}
	return n, nil
}
