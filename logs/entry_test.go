package logs

import (
	"testing"
	"time"
)

func TestEntry_String(t *testing.T) {
	t0 := time.Date(2026, 1, 15, 14, 30, 0, 0, time.UTC)
	tests := []struct {
		name  string
		entry Entry
		want  string
	}{
		{
			name:  "service line",
			entry: Entry{Time: t0, Stream: "service/web/web-zyxwv", Message: "Starting myapp on port 5000"},
			want:  "2026-01-15T14:30:00Z service/web/web-zyxwv Starting myapp on port 5000",
		},
		{
			name:  "nanoseconds are cut to the second",
			entry: Entry{Time: t0.Add(999999999), Stream: "system/build", Message: "build started"},
			want:  "2026-01-15T14:30:00Z system/build build started",
		},
		{
			name:  "other zones are rendered in UTC",
			entry: Entry{Time: t0.In(time.FixedZone("CET", 3600)), Stream: "build/BABCDEFGHI", Message: "Step 1/3"},
			want:  "2026-01-15T14:30:00Z build/BABCDEFGHI Step 1/3",
		},
		{
			name:  "line endings are dropped",
			entry: Entry{Time: t0, Stream: "service/web/web-zyxwv", Message: "done\r\n"},
			want:  "2026-01-15T14:30:00Z service/web/web-zyxwv done",
		},
		{
			name:  "empty message",
			entry: Entry{Time: t0, Stream: "service/web/web-zyxwv"},
			want:  "2026-01-15T14:30:00Z service/web/web-zyxwv ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.entry.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
