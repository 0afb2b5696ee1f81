package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/singlehost/convox/store"
)

// listingRuntime answers ProcessList with the next of errs, then with no
// error and no process.
type listingRuntime struct {
	Runtime
	errs []error
}

func (f *listingRuntime) ProcessList(ctx context.Context, sel Labels) ([]Process, error) {
	if len(f.errs) == 0 {
		return nil, nil
	}
	err := f.errs[0]
	f.errs = f.errs[1:]
	return nil, err
}

// TestConvergeAll_DockerDown: the periodic converge logs Docker going away
// once, stays quiet while it is away, and logs its return once; any other
// failure is logged every time.
func TestConvergeAll_DockerDown(t *testing.T) {
	down := fmt.Errorf("listing processes: %w", ErrUnavailable)
	other := errors.New("listing processes: boom")
	tests := []struct {
		name string
		errs []error
		stop bool     // the last converge runs as the daemon stops
		want []string // log lines, level and message
	}{
		{"up", []error{nil, nil}, false, nil},
		{"down then back", []error{down, down, down, nil, nil}, false, []string{
			"WARN docker is not answering; apps converge again once it does",
			"INFO docker answers again; converging every app",
		}},
		{"down twice", []error{down, nil, down, down}, false, []string{
			"WARN docker is not answering; apps converge again once it does",
			"INFO docker answers again; converging every app",
			"WARN docker is not answering; apps converge again once it does",
		}},
		{"other failures", []error{other, other}, false, []string{"ERROR converge", "ERROR converge"}},
		{"down, then stopping", []error{down, context.Canceled}, true, []string{
			"WARN docker is not answering; apps converge again once it does",
		}},
		{"down, then an error of Docker's", []error{down, other}, false, []string{
			"WARN docker is not answering; apps converge again once it does",
			"INFO docker answers again; converging every app",
			"ERROR converge",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := store.Open(filepath.Join(t.TempDir(), "rack.db"), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			var out bytes.Buffer
			log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey || a.Key == "error" {
						return slog.Attr{}
					}
					return a
				},
			}))
			e := New(Config{Rack: "test", Domain: "localhost", Store: st, Runtime: &listingRuntime{errs: tt.errs}, Log: log})
			for i := range tt.errs {
				ctx, cancel := context.WithCancel(context.Background())
				if tt.stop && i == len(tt.errs)-1 {
					cancel()
				}
				e.convergeAll(ctx)
				cancel()
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if line == "" {
					continue
				}
				level, _, _ := strings.Cut(strings.TrimPrefix(line, "level="), " ")
				_, msg, _ := strings.Cut(line, "msg=")
				got = append(got, level+" "+strings.Trim(msg, `"`))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("after %d converges the log says:\n%s\nwant:\n%s", len(tt.errs), strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
