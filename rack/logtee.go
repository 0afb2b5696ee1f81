package rack

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/singlehost/convox/logs"
)

// teeHandler writes the rack's own log lines to the log store too, so that
// `convox rack logs` shows them, rendered as the text handler renders them.
type teeHandler struct {
	slog.Handler
	store *logs.Store
	attrs []slog.Attr
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	_ = h.store.Append(logs.System, logs.Entry{Time: t.UTC(), Stream: "system/rack", Message: r.Level.String() + " " + b.String()})
	return h.Handler.Handle(ctx, r)
}

func (h teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return teeHandler{Handler: h.Handler.WithAttrs(attrs), store: h.store, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...)}
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{Handler: h.Handler.WithGroup(name), store: h.store, attrs: h.attrs}
}
