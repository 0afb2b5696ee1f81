package storage

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestFS(t *testing.T) {
	ctx := context.Background()
	f, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for key, body := range map[string]string{"myapp/tmp/a.tgz": "source", "myapp/build/B1/logs": "log", "other/x": "y"} {
		if err := f.Put(ctx, key, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := f.Get(ctx, "myapp/tmp/./a.tgz")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "source" {
		t.Errorf("Get = %q", got)
	}
	keys, err := f.List(ctx, "myapp/")
	if err != nil || !reflect.DeepEqual(keys, []string{"myapp/build/B1/logs", "myapp/tmp/a.tgz"}) {
		t.Errorf("List = %v, %v", keys, err)
	}
	if err := f.Delete(ctx, "myapp"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Get(ctx, "myapp/tmp/a.tgz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	if _, err := f.Get(ctx, "other/x"); err != nil {
		t.Errorf("Delete of a prefix removed another app's object: %v", err)
	}
}

func TestCleanKey(t *testing.T) {
	tests := []struct {
		key, want string
		ok        bool
	}{
		{"app/tmp/x.tgz", "app/tmp/x.tgz", true},
		{"app/./tmp//x", "app/tmp/x", true},
		{"app/../../etc/passwd", "", false},
		{"..", "", false},
		{"/etc/passwd", "", false},
		{"", "", false},
		{`app\..\x`, "", false},
	}
	for _, tt := range tests {
		got, err := CleanKey(tt.key)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("CleanKey(%q) = %q, %v", tt.key, got, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("CleanKey(%q) error %v is not ErrInvalidKey", tt.key, err)
		}
	}
}
