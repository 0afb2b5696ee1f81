package engine

import (
	"context"
	"io"
	"sync"
)

// buildOutput is the live output of a running build: written by the build,
// read from the start by any number of readers, each of which sees
// everything and ends when the build does.
type buildOutput struct {
	mu      sync.Mutex
	buf     []byte
	done    bool
	changed chan struct{} // closed and replaced at every write
}

func newBuildOutput() *buildOutput {
	return &buildOutput{changed: make(chan struct{})}
}

func (b *buildOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	close(b.changed)
	b.changed = make(chan struct{})
	return len(p), nil
}

// Close marks the end of the build.
func (b *buildOutput) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.done = true
		close(b.changed)
	}
	return nil
}

// Bytes is everything written so far.
func (b *buildOutput) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// reader follows the output from the beginning until the build ends or ctx
// does.
func (b *buildOutput) reader(ctx context.Context) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	return &buildReader{out: b, ctx: ctx, cancel: cancel}
}

type buildReader struct {
	out    *buildOutput
	off    int
	ctx    context.Context
	cancel context.CancelFunc
}

func (r *buildReader) Read(p []byte) (int, error) {
	for {
		r.out.mu.Lock()
		if r.off < len(r.out.buf) {
			n := copy(p, r.out.buf[r.off:])
			r.off += n
			r.out.mu.Unlock()
			return n, nil
		}
		done, changed := r.out.done, r.out.changed
		r.out.mu.Unlock()
		if done {
			return 0, io.EOF
		}
		select {
		case <-changed:
		case <-r.ctx.Done():
			return 0, io.EOF
		}
	}
}

func (r *buildReader) Close() error { r.cancel(); return nil }
