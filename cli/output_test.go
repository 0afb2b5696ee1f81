package cli

import (
	"bytes"
	"testing"
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
