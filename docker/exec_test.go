package docker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/singlehost/convox/engine"
)

// waitSize prints the terminal's size once it has one: below API 1.42 the
// pty starts at 0×0 and gets its size a moment after the command starts.
const waitSize = `for i in $(seq 100); do s=$(stty size); [ "$s" != "0 0" ] && break; sleep 0.05; done; echo "$s"`

func TestRuntime_ProcessExec(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.start(engine.ProcessSpec{
		Name:    h.name("target"),
		Env:     map[string]string{"BASE": "kept"},
		Init:    true,
		Command: []string{"sleep", "300"},
	})
	silence, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	tests := []struct {
		name       string
		opts       engine.ExecOptions
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "exit 0", opts: engine.ExecOptions{Command: []string{"true"}}},
		{name: "exit 3", opts: engine.ExecOptions{Command: []string{"bash", "-c", "exit 3"}}, wantCode: 3},
		{
			name:       "stdout and stderr apart",
			opts:       engine.ExecOptions{Command: []string{"bash", "-c", "echo out1; echo err >&2; echo out2"}},
			wantStdout: "out1\nout2\n",
			wantStderr: "err\n",
		},
		{
			name:       "stdin until EOF",
			opts:       engine.ExecOptions{Command: []string{"cat"}, Stdin: strings.NewReader("one\ntwo\nno newline")},
			wantStdout: "one\ntwo\nno newline",
		},
		{name: "no stdin is EOF", opts: engine.ExecOptions{Command: []string{"cat"}}},
		{
			// The command ends without reading: a Stdin that never ends
			// must not hold the call.
			name: "stdin not read",
			opts: engine.ExecOptions{Command: []string{"true"}, Stdin: silence},
		},
		{
			name:       "env added to the process's",
			opts:       engine.ExecOptions{Command: []string{"bash", "-c", `echo "$BASE $GREETING $EMPTY."`}, Env: map[string]string{"GREETING": "hello world", "EMPTY": ""}},
			wantStdout: "kept hello world .\n",
		},
		{
			name:       "tty: one stream on Stdout",
			opts:       engine.ExecOptions{Command: []string{"bash", "-c", "[[ $(tty) == /dev/pts/* ]] && echo on a pts; echo err >&2"}, Tty: true},
			wantStdout: "on a pts\r\nerr\r\n",
		},
		{
			// The terminal echoes the input. The output goes on after
			// Stdin has ended: Docker 20.10 would drop it on a half-close.
			name:       "tty: stdin",
			opts:       engine.ExecOptions{Command: []string{"bash", "-c", `read l; echo "got $l"; sleep 0.5; echo after`}, Tty: true, Stdin: strings.NewReader("hi\n")},
			wantStdout: "hi\r\ngot hi\r\nafter\r\n",
		},
		{
			// On a terminal the end of input is ^D, which it does not echo.
			name:       "tty: stdin until ^D",
			opts:       engine.ExecOptions{Command: []string{"wc", "-l"}, Tty: true, Stdin: strings.NewReader("one\ntwo\n\x04")},
			wantStdout: "one\r\ntwo\r\n2\r\n",
		},
		{
			name:       "tty: default size",
			opts:       engine.ExecOptions{Command: []string{"bash", "-c", waitSize}, Tty: true},
			wantStdout: "24 80\r\n",
		},
		{
			name:       "tty: size",
			opts:       engine.ExecOptions{Command: []string{"bash", "-c", waitSize}, Tty: true, Height: 40, Width: 132},
			wantStdout: "40 132\r\n",
		},
		{
			// Only the engine's own message moves to Stderr.
			name:       "output that reads like a start failure",
			opts:       engine.ExecOptions{Command: []string{"bash", "-c", "echo " + startFailure + ": not really; exit 126"}},
			wantCode:   126,
			wantStdout: startFailure + ": not really\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := h.with(t)
			var stdout, stderr bytes.Buffer
			opts := tt.opts
			opts.Stdout, opts.Stderr = &stdout, &stderr
			code, err := h.r.ProcessExec(h.ctx(), p.ID, opts)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, stdout.String(), stderr.String())
			}
			if got := stdout.String(); got != tt.wantStdout {
				t.Errorf("stdout: got %q, want %q", got, tt.wantStdout)
			}
			if got := stderr.String(); got != tt.wantStderr {
				t.Errorf("stderr: got %q, want %q", got, tt.wantStderr)
			}
		})
	}

	// Docker 20.10 says 126 for all of these; later engines 127 for a
	// missing command.
	notFound := []struct {
		name    string
		tty     bool
		command string
		want    string
	}{
		{"missing command", false, "no-such-command", `"no-such-command": executable file not found`},
		{"missing path", false, "/no/such/file", "no such file or directory"},
		{"not executable", false, "/etc/passwd", "permission denied"},
		{"missing command on a tty", true, "no-such-command", `"no-such-command": executable file not found`},
	}
	for _, tt := range notFound {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := h.with(t)
			var stdout, stderr bytes.Buffer
			code, err := h.r.ProcessExec(h.ctx(), p.ID, engine.ExecOptions{Command: []string{tt.command}, Tty: tt.tty, Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatalf("got %v, want an exit code", err)
			}
			if code != 126 && code != 127 {
				t.Errorf("exit code: got %d, want 126 or 127", code)
			}
			// Without a TTY the message is an error; with one, it is on the
			// terminal.
			msg, empty := &stderr, &stdout
			if tt.tty {
				msg, empty = &stdout, &stderr
			}
			if !strings.Contains(msg.String(), tt.want) {
				t.Errorf("message: got %q, want it to contain %q", msg.String(), tt.want)
			}
			if empty.Len() != 0 {
				t.Errorf("other stream: got %q, want nothing", empty.String())
			}
		})
	}
}

func TestRuntime_ProcessExec_Cancel(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.start(engine.ProcessSpec{Name: h.name("target"), Init: true, Command: []string{"sleep", "300"}})
	ctx, cancel := context.WithCancel(h.ctx())
	defer cancel()
	out := &signalWriter{started: make(chan struct{})}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := h.r.ProcessExec(ctx, p.ID, engine.ExecOptions{Command: []string{"bash", "-c", "echo started; exec sleep 60"}, Stdout: out})
		done <- result{code, err}
	}()
	select {
	case <-out.started:
	case res := <-done:
		t.Fatalf("returned %d, %v before the command started", res.code, res.err)
	case <-time.After(10 * time.Second):
		t.Fatal("no output 10s after the exec")
	}
	cancel()
	begin := time.Now()
	select {
	case res := <-done:
		if elapsed := time.Since(begin); elapsed > 2*time.Second {
			t.Errorf("returned %v after the cancel, want within 2s", elapsed)
		}
		if !errors.Is(res.err, context.Canceled) || res.code != -1 {
			t.Errorf("got %d, %v; want -1 and an error wrapping context.Canceled", res.code, res.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ProcessExec still running 5s after its ctx ended")
	}
}

// signalWriter closes started on its first write.
type signalWriter struct {
	once    sync.Once
	started chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.started) })
	return len(p), nil
}

func TestRuntime_ProcessExec_Stopped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.start(engine.ProcessSpec{Name: h.name("done"), Command: []string{"true"}})
	h.waitExit(p.ID)
	code, err := h.r.ProcessExec(h.ctx(), p.ID, engine.ExecOptions{Command: []string{"true"}})
	if err == nil || !strings.Contains(err.Error(), "is not running") || code != -1 {
		t.Errorf("got %d, %v; want -1 and an error saying the process is not running", code, err)
	}
	if strings.Contains(err.Error(), "Error response from daemon") {
		t.Errorf("error %q keeps the client's prefix", err)
	}
}

func TestHoldWriter(t *testing.T) {
	tests := []struct {
		name       string
		writes     []string
		wantWrites []string
		wantHeld   string
	}{
		{"ordinary output", []string{"a\n", startFailure + "\n"}, []string{"a\n", startFailure + "\n"}, ""},
		{"start failure", []string{startFailure + ": exec failed\r\n"}, nil, startFailure + ": exec failed\r\n"},
		{"look-alike, then more", []string{startFailure + "!\n", "b\n"}, []string{startFailure + "!\n", "b\n"}, ""},
		{"prefix cut short", []string{"OCI", " runtime exec failed\n"}, []string{"OCI", " runtime exec failed\n"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec recorder
			h := &holdWriter{w: &rec}
			for _, w := range tt.writes {
				if n, err := io.WriteString(h, w); n != len(w) || err != nil {
					t.Fatalf("write %q: %d, %v", w, n, err)
				}
			}
			if !slices.Equal(rec.writes, tt.wantWrites) || string(h.buf) != tt.wantHeld {
				t.Errorf("got writes %q held %q, want %q held %q", rec.writes, h.buf, tt.wantWrites, tt.wantHeld)
			}
		})
	}
}
