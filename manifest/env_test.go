package manifest

import (
	"maps"
	"testing"
)

func TestInterpolate(t *testing.T) {
	env := map[string]string{"HOST": "example.org", "A B": "spaced", "EMPTY": ""}
	tests := []struct {
		name, in, want string
	}{
		{"set", "domain: ${HOST}", "domain: example.org"},
		{"missing is empty", "domain: ${NOPE}", "domain: "},
		{"empty", "x: ${EMPTY}y", "x: y"},
		{"no braces untouched", "command: echo $HOST", "command: echo $HOST"},
		{"name taken verbatim", "x: ${A B}", "x: spaced"},
		{"several", "${HOST}/${HOST}", "example.org/example.org"},
		{"shortest match", "${HOST}}", "example.org}"},
		{"unclosed untouched", "x: ${HOST", "x: ${HOST"},
		{"no nesting", "x: ${${HOST}}", "x: }"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(interpolate([]byte(tt.in), env)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestManifest_RequiredEnv(t *testing.T) {
	const yml = `
environment:
  - SHARED
  - DEFAULTED=1
services:
  web:
    environment:
      - WEB_KEY
      - B_KEY
      - "*"
  worker:
    environment:
      - A_KEY
      - WEB_KEY
`
	m, err := Load([]byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"all missing", nil, "required env: A_KEY, B_KEY, SHARED, WEB_KEY"},
		{"some missing", map[string]string{"SHARED": "x", "WEB_KEY": "y"}, "required env: A_KEY, B_KEY"},
		{"empty value counts as set", map[string]string{"SHARED": "", "WEB_KEY": "", "A_KEY": "", "B_KEY": ""}, "<nil>"},
		{"defaults never required", map[string]string{"SHARED": "1", "WEB_KEY": "1", "A_KEY": "1", "B_KEY": "1"}, "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errString(m.RequiredEnv(tt.env)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestManifest_RequiredEnv_noServices(t *testing.T) {
	// Convox checks per service, so a top-level KEY with no service to
	// receive it requires nothing.
	m, err := Load([]byte("environment:\n  - LONELY\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RequiredEnv(nil); err != nil {
		t.Errorf("got %v, want nil", err)
	}
}

func TestManifest_ServiceEnv(t *testing.T) {
	const yml = `
environment:
  - SHARED=top
  - LEVEL=top
services:
  web:
    environment:
      - LEVEL=service
      - REQUIRED
      - EQUALS=a=b
      - EMPTY=
  worker:
    environment:
      - "*"
`
	m, err := Load([]byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	web, _ := m.Service("web")
	worker, _ := m.Service("worker")
	tests := []struct {
		name    string
		service Service
		release map[string]string
		want    map[string]string
	}{
		{
			name:    "defaults, service entry wins over top-level",
			service: *web,
			want:    map[string]string{"SHARED": "top", "LEVEL": "service", "EQUALS": "a=b", "EMPTY": ""},
		},
		{
			name:    "release wins over defaults and undeclared keys are injected",
			service: *web,
			release: map[string]string{"LEVEL": "release", "REQUIRED": "r", "OTHER": "o"},
			want:    map[string]string{"SHARED": "top", "LEVEL": "release", "EQUALS": "a=b", "EMPTY": "", "REQUIRED": "r", "OTHER": "o"},
		},
		{
			name:    "missing required key is left out, not empty",
			service: *web,
			release: map[string]string{},
			want:    map[string]string{"SHARED": "top", "LEVEL": "service", "EQUALS": "a=b", "EMPTY": ""},
		},
		{
			name:    "wildcard gets the whole release env",
			service: *worker,
			release: map[string]string{"A": "1", "B": "2"},
			want:    map[string]string{"SHARED": "top", "LEVEL": "top", "A": "1", "B": "2"},
		},
		{
			name:    "undeclared service still gets the release env",
			service: Service{Name: "bare"},
			release: map[string]string{"A": "1"},
			want:    map[string]string{"A": "1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := m.ServiceEnv(tt.service, tt.release)
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
