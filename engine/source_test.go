package engine

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"reflect"
	"strings"
	"testing"
)

type entry struct {
	name, body string
	typ        byte
	link       string
}

func makeSource(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			io.WriteString(tw, e.body)
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestSourceFile(t *testing.T) {
	src := makeSource(t, entry{name: "./Dockerfile", body: "FROM x"}, entry{name: "./convox.yml", body: "services: {}"})
	data, found, err := sourceFile(bytes.NewReader(src), "convox.yml")
	if err != nil || !found || string(data) != "services: {}" {
		t.Errorf("sourceFile = %q, %v, %v", data, found, err)
	}
	_, found, err = sourceFile(bytes.NewReader(src), "other.yml")
	if err != nil || found {
		t.Errorf("sourceFile(missing) = %v, %v", found, err)
	}
}

func TestSourceRejectsEscapes(t *testing.T) {
	tests := []entry{
		{name: "../etc/passwd", body: "x"},
		{name: "a/../../x", body: "x"},
		{name: "/etc/passwd", body: "x"},
		{name: "hard", typ: tar.TypeLink, link: "../../etc/shadow"},
	}
	for _, e := range tests {
		src := makeSource(t, entry{name: "convox.yml", body: "x"}, e)
		err := buildContext(bytes.NewReader(src), ".", io.Discard)
		if err == nil || !strings.Contains(err.Error(), "outside the source") {
			t.Errorf("entry %+v: buildContext error = %v", e, err)
		}
	}
}

func TestBuildContext_Subdirectory(t *testing.T) {
	src := makeSource(t,
		entry{name: "convox.yml", body: "m"},
		entry{name: "api/", typ: tar.TypeDir},
		entry{name: "api/Dockerfile", body: "FROM x"},
		entry{name: "api/src/main.go", body: "package main"},
		entry{name: "web/Dockerfile", body: "FROM y"},
	)
	var out bytes.Buffer
	if err := buildContext(bytes.NewReader(src), "api", &out); err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if want := []string{"Dockerfile", "src/main.go"}; !reflect.DeepEqual(names, want) {
		t.Errorf("context = %v, want %v", names, want)
	}
}
