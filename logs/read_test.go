package logs

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStore_Read_Follow(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	mustAppend(t, s, "myapp", numbered(0, 3)...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Read(ctx, "myapp", Query{Follow: true, Tail: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := render(receive(t, ch, 2)); !slices.Equal(got, render(numbered(1, 3))) {
		t.Errorf("history: %q, want lines 1 and 2", got)
	}
	for i := 3; i < 13; i++ {
		start := time.Now()
		mustAppend(t, s, "myapp", numbered(i, i+1)...)
		got := receive(t, ch, 1)[0]
		if n := lineNo(t, got); n != i {
			t.Fatalf("received line %d, want %d", n, i)
		}
		// Well under a millisecond in practice; the bound leaves room for
		// a loaded machine and the race detector.
		if d := time.Since(start); d > 250*time.Millisecond {
			t.Errorf("line %d took %v to reach the follower", i, d)
		}
	}
	select {
	case e := <-ch:
		t.Errorf("unexpected entry %v", e)
	default:
	}
}

func TestStore_Read_FollowQuery(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Read(ctx, "myapp", Query{Follow: true, Prefix: "service/web/", Filter: "error", Since: t0})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "myapp",
		Entry{t0, "service/worker/worker-1", "error in worker"},
		Entry{t0, "service/web/web-1", "fine"},
		Entry{t0.Add(-time.Second), "service/web/web-1", "error, but too old"},
		Entry{t0, "service/web/web-1", "error in web"},
	)
	mustAppend(t, s, "other", Entry{t0, "service/web/web-1", "error in another app"})
	if got := receive(t, ch, 1)[0]; got.Message != "error in web" {
		t.Errorf("received %v, want only the web error", got)
	}
	select {
	case e := <-ch:
		t.Errorf("unexpected entry %v", e)
	default:
	}
}

// TestStore_Read_FollowBoundary starts followers while entries are being
// appended: each must see every entry exactly once, in order, whichever
// side of the history/live boundary it falls on.
func TestStore_Read_FollowBoundary(t *testing.T) {
	const n = 20000
	s := openStore(t, t.TempDir(), Options{FollowBuffer: n + 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var followers []<-chan Entry
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < n; i++ {
			if i == 10 {
				close(started)
			}
			if err := s.Append("myapp", numbered(i, i+1)...); err != nil {
				t.Error(err)
				return
			}
		}
	})
	defer wg.Wait()
	<-started
	for range 20 {
		ch, err := s.Read(ctx, "myapp", Query{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		followers = append(followers, ch)
		runtime.Gosched()
	}
	for f, ch := range followers {
		for i, e := range receive(t, ch, n) {
			if got := lineNo(t, e); got != i {
				t.Fatalf("follower %d: entry %d is line %d", f, i, got)
			}
		}
	}
}

// TestStore_Read_ConcurrentAppends appends from several goroutines: a
// follower sees every entry once, in the order the history keeps.
func TestStore_Read_ConcurrentAppends(t *testing.T) {
	const writers, each = 8, 500
	s := openStore(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Read(ctx, "myapp", Query{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				e := Entry{Time: t0, Stream: fmt.Sprintf("service/w/%d", w), Message: fmt.Sprint(i)}
				if err := s.Append("myapp", e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	defer wg.Wait()
	live := receive(t, ch, writers*each)
	next := map[string]int{}
	for _, e := range live {
		if want := fmt.Sprint(next[e.Stream]); e.Message != want {
			t.Fatalf("%s: got %s, want %s", e.Stream, e.Message, want)
		}
		next[e.Stream]++
	}
	if got := render(history(t, s, "myapp", Query{})); !slices.Equal(got, render(live)) {
		t.Errorf("history and live order differ")
	}
}

// TestStore_Read_SlowFollower checks that a follower that never receives
// does not hold up Append, and is cut off with a message.
func TestStore_Read_SlowFollower(t *testing.T) {
	const buffer, n = 100, 10000
	s := openStore(t, t.TempDir(), Options{FollowBuffer: buffer})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := s.Read(ctx, "myapp", Query{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		mustAppend(t, s, "myapp", numbered(i, i+1)...)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("%d appends took %v with a stuck follower", n, d)
	}

	got := drain(t, slow)
	if len(got) < buffer+1 {
		t.Fatalf("slow follower got %d entries, want at least %d and the cut-off", len(got), buffer)
	}
	last := got[len(got)-1]
	if last.Stream != "system/logs" || last.Message != CutOff {
		t.Errorf("last entry %q, want the cut-off message", last)
	}
	// Everything before the cut-off, with no gap.
	for i, e := range got[:len(got)-1] {
		if n := lineNo(t, e); n != i {
			t.Fatalf("entry %d is line %d", i, n)
		}
	}
	if !strings.HasSuffix(last.String(), " system/logs "+CutOff) {
		t.Errorf("rendered cut-off %q", last)
	}

	// The store carries on for others.
	fresh, err := s.Read(ctx, "myapp", Query{Follow: true, Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	receive(t, fresh, 1)
	mustAppend(t, s, "myapp", numbered(n, n+1)...)
	if got := receive(t, fresh, 1)[0]; lineNo(t, got) != n {
		t.Errorf("new follower got %v", got)
	}
}

// TestStore_Read_Ends checks that every way a read ends closes its
// channel and returns its goroutine.
func TestStore_Read_Ends(t *testing.T) {
	tests := []struct {
		name string
		q    Query
		// end ends the reads; it may cancel ctx.
		end func(t *testing.T, s *Store, cancel context.CancelFunc)
	}{
		{"ctx cancelled while following", Query{Follow: true}, func(t *testing.T, s *Store, cancel context.CancelFunc) { cancel() }},
		{"ctx cancelled during the history", Query{}, func(t *testing.T, s *Store, cancel context.CancelFunc) { cancel() }},
		{"app deleted", Query{Follow: true}, func(t *testing.T, s *Store, cancel context.CancelFunc) {
			if err := s.Delete("myapp"); err != nil {
				t.Fatal(err)
			}
		}},
		{"store closed", Query{Follow: true}, func(t *testing.T, s *Store, cancel context.CancelFunc) {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{})
			// More history than the channel holds, so that unread
			// readers are blocked sending it.
			for i := 0; i < 1000; i += 100 {
				mustAppend(t, s, "myapp", numbered(i, i+100)...)
			}
			before := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var chans []<-chan Entry
			for range 10 {
				ch, err := s.Read(ctx, "myapp", tt.q)
				if err != nil {
					t.Fatal(err)
				}
				chans = append(chans, ch)
			}
			receive(t, chans[0], 1)
			tt.end(t, s, cancel)
			for _, ch := range chans {
				drain(t, ch)
			}
			waitGoroutines(t, before)
		})
	}

	t.Run("history only, drained", func(t *testing.T) {
		s := openStore(t, t.TempDir(), Options{})
		mustAppend(t, s, "myapp", numbered(0, 10)...)
		before := runtime.NumGoroutine()
		if got := history(t, s, "myapp", Query{}); len(got) != 10 {
			t.Errorf("got %d entries, want 10", len(got))
		}
		waitGoroutines(t, before)
	})
}

// waitGoroutines waits until no more than n goroutines run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}
