package cli

import (
	"bytes"
	"testing"
	"time"
)

func TestWriteTable(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		rows   [][]string
		want   string
	}{
		{
			name:   "widest cell sets the column, last column unpadded",
			header: []string{"APP", "STATUS", "RELEASE"},
			rows:   [][]string{{"a", "running", "R1"}, {"longer-name", "ok", "RABCDEFGHIJ"}},
			want: "APP          STATUS   RELEASE\n" +
				"a            running  R1\n" +
				"longer-name  ok       RABCDEFGHIJ\n",
		},
		{
			name:   "empty last cell leaves the padding",
			header: []string{"APP", "STATUS", "RELEASE"},
			rows:   [][]string{{"app1", "running", "release1"}, {"app2", "creating", ""}},
			want: "APP   STATUS    RELEASE\n" +
				"app1  running   release1\n" +
				"app2  creating  \n",
		},
		{
			name:   "header only",
			header: []string{"APP", "STATUS", "RELEASE"},
			want:   "APP  STATUS  RELEASE\n",
		},
		{
			name:   "empty middle cell and short row",
			header: []string{"A", "B", "C"},
			rows:   [][]string{{"x", "", "z"}, {"only"}},
			want: "A     B  C\n" +
				"x        z\n" +
				"only     \n",
		},
		{
			name:   "width counts characters, not bytes",
			header: []string{"NAME", "V"},
			rows:   [][]string{{"héllo", "1"}},
			want:   "NAME   V\nhéllo  1\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeTable(&b, tt.header, tt.rows); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got:\n%q\nwant:\n%q", b.String(), tt.want)
			}
		})
	}
}

func TestWriteInfo(t *testing.T) {
	tests := []struct {
		name   string
		fields []field
		want   string
	}{
		{
			name:   "keys padded to the longest plus one",
			fields: []field{{"Name", "myapp"}, {"Release", "RABCDEFGHI"}},
			want:   "Name    myapp\nRelease RABCDEFGHI\n",
		},
		{
			name:   "empty value",
			fields: []field{{"Name", "myapp"}, {"Release", ""}},
			want:   "Name    myapp\nRelease \n",
		},
		{
			name:   "continuation lines indented to the value column",
			fields: []field{{"Router", "a (external)\nb (internal)"}, {"Status", "running"}},
			want:   "Router a (external)\n       b (internal)\nStatus running\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeInfo(&b, tt.fields); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got:\n%q\nwant:\n%q", b.String(), tt.want)
			}
		})
	}
}

func TestStartfOK(t *testing.T) {
	var b bytes.Buffer
	startf(&b, "Creating %s", "myapp")
	if b.String() != "Creating myapp... " {
		t.Errorf("startf wrote %q", b.String())
	}
	ok(&b)
	startf(&b, "Importing build")
	ok(&b, "RABCDEFGHI")
	if want := "Creating myapp... OK\nImporting build... OK, RABCDEFGHI\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		before time.Duration
		want   string
	}{
		{0, "just now"},
		{999 * time.Millisecond, "just now"},
		{-time.Hour, "just now"},
		{time.Second, "1 second ago"},
		{45 * time.Second, "45 seconds ago"},
		{90 * time.Second, "1 minute ago"},
		{2 * time.Minute, "2 minutes ago"},
		{59 * time.Minute, "59 minutes ago"},
		{time.Hour, "1 hour ago"},
		{3*time.Hour + 59*time.Minute, "3 hours ago"},
		{36 * time.Hour, "1 day ago"},
		{48*time.Hour + 2*time.Minute, "2 days ago"},
		{8 * 24 * time.Hour, "1 week ago"},
		{15 * 24 * time.Hour, "2 weeks ago"},
		{45 * 24 * time.Hour, "1 month ago"},
		{100 * 24 * time.Hour, "3 months ago"},
		{400 * 24 * time.Hour, "1 year ago"},
		{600 * 24 * time.Hour, "2 years ago"},
		{1200 * 24 * time.Hour, "3 years ago"},
	}
	for _, tt := range tests {
		if got := ago(now, now.Add(-tt.before)); got != tt.want {
			t.Errorf("ago(%s before) = %q, want %q", tt.before, got, tt.want)
		}
	}
	if got := ago(now, time.Time{}); got != "" {
		t.Errorf("ago(zero) = %q, want empty", got)
	}
}

func TestElapsed(t *testing.T) {
	start := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		start, end time.Time
		want       string
	}{
		{start, start.Add(2 * time.Minute), "2m0s"},
		{start, start.Add(2*time.Minute + 400*time.Millisecond), "2m0s"},
		{start, start.Add(59*time.Second + 600*time.Millisecond), "1m0s"},
		{start, start.Add(time.Hour + 5*time.Second), "1h0m5s"},
		{start, time.Time{}, ""},
		{time.Time{}, start, ""},
	}
	for _, tt := range tests {
		if got := elapsed(tt.start, tt.end); got != tt.want {
			t.Errorf("elapsed(%s, %s) = %q, want %q", tt.start, tt.end, got, tt.want)
		}
	}
}
