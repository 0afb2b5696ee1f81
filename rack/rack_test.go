package rack

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseImages(t *testing.T) {
	tests := []struct {
		in      []string
		want    map[string]string
		wantErr string
	}{
		{nil, map[string]string{}, ""},
		{[]string{"postgres=convoxtest/postgres:latest", " redis=r:1 "}, map[string]string{"postgres": "convoxtest/postgres:latest", "redis": "r:1"}, ""},
		{[]string{"postgres"}, nil, `invalid --resource-image "postgres": want TYPE=IMAGE, e.g. postgres=postgres:16`},
		{[]string{"=img"}, nil, `invalid --resource-image "=img": want TYPE=IMAGE, e.g. postgres=postgres:16`},
	}
	for _, tt := range tests {
		got, err := parseImages(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("parseImages(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseImages(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestLocalURL(t *testing.T) {
	tests := []struct{ host, want string }{
		{"127.0.0.1", "https://convox:pw@127.0.0.1:5443"},
		{"0.0.0.0", "https://convox:pw@127.0.0.1:5443"},
		{"", "https://convox:pw@127.0.0.1:5443"},
		{"::", "https://convox:pw@127.0.0.1:5443"},
		{"::1", "https://convox:pw@[::1]:5443"},
		{"rack.example.com", "https://convox:pw@rack.example.com:5443"},
	}
	for _, tt := range tests {
		if got := localURL(tt.host, "5443", "pw"); got != tt.want {
			t.Errorf("localURL(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
}

func TestRegister(t *testing.T) {
	dir := t.TempDir()
	if err := register(dir, "dev", "https://convox:pw@127.0.0.1:5443"); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"racks/dev": "https://convox:pw@127.0.0.1:5443", "rack": "dev"} {
		got, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", file, got, err, want)
		}
	}

	// A Terraform rack of the official CLI is a directory: never replace it.
	if err := os.MkdirAll(filepath.Join(dir, "racks", "tf"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := register(dir, "tf", "https://x")
	if err == nil || !strings.Contains(err.Error(), "is a Terraform rack") {
		t.Errorf("register over a Terraform rack: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "rack")); string(got) != "dev" {
		t.Errorf("selected rack changed to %q", got)
	}
}

func TestSecrets_Stable(t *testing.T) {
	home := t.TempDir()
	pw1, err := password(home)
	if err != nil || len(pw1) != 40 {
		t.Fatalf("password = %q, %v", pw1, err)
	}
	pw2, _ := password(home)
	if pw1 != pw2 {
		t.Errorf("password changed across starts: %q then %q", pw1, pw2)
	}
	c1, err := certificate(home, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	c2, err := certificate(home, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c1.Certificate, c2.Certificate) {
		t.Error("certificate changed across starts")
	}
	for _, f := range []string{"password", "rack.crt", "rack.key"} {
		fi, err := os.Stat(filepath.Join(home, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, fi.Mode().Perm(), err)
		}
	}
}

func TestEnvDefaults(t *testing.T) {
	tests := []struct {
		name, value string
		read        func(*envDefaults) any
		want        any
		wantErr     string
	}{
		{"int unset", "", func(e *envDefaults) any { return e.int("CONVOX_TEST_VALUE") }, int64(0), ""},
		{"int", "12", func(e *envDefaults) any { return e.int("CONVOX_TEST_VALUE") }, int64(12), ""},
		{"int not a number", "many", func(e *envDefaults) any { return e.int("CONVOX_TEST_VALUE") }, int64(0), `invalid CONVOX_TEST_VALUE "many": want a whole number`},
		{"duration unset", "", func(e *envDefaults) any { return e.duration("CONVOX_TEST_VALUE", time.Minute) }, time.Minute, ""},
		{"duration", "90s", func(e *envDefaults) any { return e.duration("CONVOX_TEST_VALUE", time.Minute) }, 90 * time.Second, ""},
		{"duration without unit", "5", func(e *envDefaults) any { return e.duration("CONVOX_TEST_VALUE", time.Minute) }, time.Minute, `invalid CONVOX_TEST_VALUE "5": want a duration such as 5m or 90s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CONVOX_TEST_VALUE", tt.value)
			var e envDefaults
			got := tt.read(&e)
			gotErr := ""
			if e.err != nil {
				gotErr = e.err.Error()
			}
			if got != tt.want || gotErr != tt.wantErr {
				t.Errorf("got %v, error %q; want %v, error %q", got, gotErr, tt.want, tt.wantErr)
			}
		})
	}
}
