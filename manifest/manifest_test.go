package manifest

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/*.txt")

// separator ends the input of a fixture.
const separator = "----------"

// TestLoad runs every testdata/*.txt fixture as a subtest. A fixture is:
//
//	the convox.yml input, verbatim
//	----------
//	the expected result
//
// The expected result is the Manifest as indented JSON, or a line "error:"
// followed by the exact error text (one problem per line). Input lines of
// the form "# env: KEY=VALUE" give the env for ${KEY} interpolation; being
// YAML comments they stay in the input, so line numbers in expected errors
// are the fixture's own. go test -update rewrites the expected results.
func TestLoad(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(raw), "\n"+separator+"\n")
			if !ok {
				t.Fatalf("%s: no %q line", file, separator)
			}
			input += "\n"

			got := result(input)
			if *update {
				if err := os.WriteFile(file, []byte(input+separator+"\n"+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// result loads a fixture's input and renders it as the expected section.
func result(input string) string {
	env := map[string]string{}
	for _, line := range strings.Split(input, "\n") {
		if kv, ok := strings.CutPrefix(line, "# env: "); ok {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	m, err := Load([]byte(input), env)
	if err != nil {
		return "error:\n" + err.Error() + "\n"
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "error:\nmarshal: " + err.Error() + "\n"
	}
	return string(out) + "\n"
}

func TestLoad_Name(t *testing.T) {
	data := "services:\n  web:\n    port: lots\n    helth: /\n"
	_, err := Load([]byte(data), nil, Name("convox.dev.yml"))
	if got, want := errString(err), `convox.dev.yml:3: services.web.port: expected a port like 3000 or "https:3000", got "lots"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	m, err := Load([]byte("services:\n  web:\n    helth: /\n"), nil, Name("convox.dev.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(m.Warnings, "\n"), `convox.dev.yml:3: services.web.helth: unknown key (did you mean "health"?)`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestLoad_ErrorType(t *testing.T) {
	data := "services:\n  web:\n    scale:\n      count: lots\n    timeout: soon\n"
	_, err := Load([]byte(data), nil)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T, want *Error", err)
	}
	want := Error{File: "convox.yml", Line: 4, Column: 7, Path: "services.web.scale.count", Message: `expected an integer, got "lots"`}
	if *e != want {
		t.Errorf("got %+v, want %+v", *e, want)
	}
	if got := strings.Count(err.Error(), "\n"); got != 1 {
		t.Errorf("got %d line breaks in %q, want 1 (two errors)", got, err)
	}
}

func TestManifest_Service(t *testing.T) {
	m, err := Load([]byte("services:\n  web: {}\n  worker: {}\nresources:\n  db:\n    type: postgres\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := m.Service("worker"); !ok || s.Name != "worker" {
		t.Errorf("Service(worker) = %v, %v", s, ok)
	}
	if _, ok := m.Service("nope"); ok {
		t.Error("Service(nope) found")
	}
	if r, ok := m.Resource("db"); !ok || r.Type != "postgres" {
		t.Errorf("Resource(db) = %v, %v", r, ok)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
