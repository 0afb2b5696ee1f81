package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeRack embeds Rack so that tests override only what they call; an
// unexpected call panics and fails the test.
type fakeRack struct {
	Rack
	apps map[string]*App
}

func (f *fakeRack) AppGet(ctx context.Context, name string) (*App, error) {
	if a, ok := f.apps[name]; ok {
		return a, nil
	}
	return nil, Errorf(ErrNotFound, "app not found: %s", name)
}

func (f *fakeRack) AppUpdate(ctx context.Context, name string, opts AppUpdateOptions) error {
	a, err := f.AppGet(ctx, name)
	if err != nil {
		return err
	}
	if opts.Lock != nil {
		a.Locked = *opts.Lock
	}
	a.Parameters = opts.Parameters
	return nil
}

func (f *fakeRack) AppDelete(ctx context.Context, name string) error {
	return errors.New("disk on fire")
}

func TestServer(t *testing.T) {
	fake := &fakeRack{apps: map[string]*App{"myapp": {Name: "myapp", Status: "running"}}}
	srv := httptest.NewServer(NewServer(fake, "secret", nil))
	defer srv.Close()

	tests := []struct {
		name, method, path, body, password, accept string
		status                                     int
		want                                       string
	}{
		{"no password", "GET", "/apps/myapp", "", "", "", 401, "invalid authentication\n"},
		{"wrong password", "GET", "/apps/myapp", "", "nope", "", 401, "invalid authentication\n"},
		{"auth", "GET", "/auth", "", "secret", "", 200, "ok\n"},
		{"get", "GET", "/apps/myapp", "", "secret", "", 200, "{\n  \"locked\": false,\n  \"name\": \"myapp\",\n  \"release\": \"\",\n  \"router\": \"\",\n  \"status\": \"running\",\n  \"parameters\": null\n}\n"},
		{"not found", "GET", "/apps/nope", "", "secret", "", 404, "app not found: nope\n"},
		{"not found as json", "GET", "/apps/nope", "", "secret", "application/json", 404, "{\"error\":\"app not found: nope\"}\n"},
		{"bad bool", "PUT", "/apps/myapp", "lock=maybe", "secret", "", 400, "lock must be true or false, got \"maybe\"\n"},
		{"lock", "PUT", "/apps/myapp", "lock=true&parameters=BuildCpu%3D256", "secret", "", 200, "ok\n"},
		{"untyped error", "DELETE", "/apps/myapp", "", "secret", "", 500, "internal error: disk on fire\n"},
		{"unknown route", "GET", "/nowhere", "", "secret", "", 404, "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			if tt.password != "" {
				req.SetBasicAuth("convox", tt.password)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status || string(body) != tt.want {
				t.Errorf("got %d %q, want %d %q", res.StatusCode, body, tt.status, tt.want)
			}
			if res.Header.Get("Request-Id") == "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("missing security headers: %v", res.Header)
			}
		})
	}
	if a := fake.apps["myapp"]; !a.Locked || a.Parameters["BuildCpu"] != "256" {
		t.Errorf("after PUT: %+v", a)
	}
}

// TestClient_ErrorKinds: the client gives back the kind the server sent.
func TestClient_ErrorKinds(t *testing.T) {
	fake := &fakeRack{apps: map[string]*App{}}
	srv := httptest.NewServer(NewServer(fake, "secret", nil))
	defer srv.Close()

	c, err := NewClient("http://convox:secret@"+strings.TrimPrefix(srv.URL, "http://"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AppGet(context.Background(), "nope")
	if !errors.Is(err, ErrNotFound) || err.Error() != "app not found: nope" {
		t.Errorf("AppGet error = %v, want ErrNotFound 'app not found: nope'", err)
	}

	bad, _ := NewClient("http://convox:wrong@"+strings.TrimPrefix(srv.URL, "http://"), nil)
	_, err = bad.AppGet(context.Background(), "nope")
	if !errors.Is(err, ErrUnauthorized) || err.Error() != "invalid authentication" {
		t.Errorf("wrong password error = %v", err)
	}

	srv.Close()
	_, err = c.AppGet(context.Background(), "nope")
	var ce *ConnError
	if !errors.As(err, &ce) || ce.URL != srv.URL {
		t.Errorf("closed server error = %#v, want *ConnError for %s", err, srv.URL)
	}
}

func TestNewClient_InvalidURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "convox:pw@host", "https://"} {
		if _, err := NewClient(u, nil); err == nil {
			t.Errorf("NewClient(%q) succeeded", u)
		}
	}
	if got := Redact("https://convox:pw@host:5443"); got != "https://host:5443" {
		t.Errorf("Redact = %q", got)
	}
}
