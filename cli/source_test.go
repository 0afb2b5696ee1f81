package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDockerignore(t *testing.T) {
	tests := []struct {
		name     string
		patterns string
		ignored  []string
		kept     []string
	}{
		{
			name:     "star is one level, anchored at the root",
			patterns: "*.log",
			ignored:  []string{"debug.log", ".log"},
			kept:     []string{"src/debug.log", "log", "debug.log.txt"},
		},
		{
			name:     "double star is any depth",
			patterns: "**/*.log",
			ignored:  []string{"debug.log", "a/debug.log", "a/b/c/debug.log"},
			kept:     []string{"debug.txt"},
		},
		{
			name:     "double star directory at any depth, with its contents",
			patterns: "**/node_modules",
			ignored:  []string{"node_modules", "node_modules/x/index.js", "web/node_modules", "web/node_modules/y"},
			kept:     []string{"node_modules.txt", "web/modules"},
		},
		{
			name:     "leading slash is the root",
			patterns: "/tmp",
			ignored:  []string{"tmp", "tmp/x"},
			kept:     []string{"src/tmp", "tmpfile"},
		},
		{
			name:     "trailing slash is cleaned away, as Docker does",
			patterns: "dir/",
			ignored:  []string{"dir", "dir/file", "dir/sub/file"},
			kept:     []string{"other/dir", "dirt"},
		},
		{
			name:     "trailing double star is what the directory holds",
			patterns: "build/**",
			ignored:  []string{"build/a", "build/a/b"},
			kept:     []string{"build"},
		},
		{
			name:     "exceptions re-include; the last match wins",
			patterns: "*.log\n!keep.log\n",
			ignored:  []string{"debug.log"},
			kept:     []string{"keep.log"},
		},
		{
			name:     "an exception before the rule loses",
			patterns: "!keep.log\n*.log\n",
			ignored:  []string{"keep.log", "debug.log"},
		},
		{
			name:     "an exception inside an ignored directory",
			patterns: "docs\n!docs/README.md\n",
			ignored:  []string{"docs", "docs/guide.md"},
			kept:     []string{"docs/README.md"},
		},
		{
			name:     "question mark and classes are one character",
			patterns: "file?.txt\n[ab].go",
			ignored:  []string{"file1.txt", "a.go", "b.go"},
			kept:     []string{"file10.txt", "c.go"},
		},
		{
			name:     "comments, blank lines and spaces",
			patterns: "# a comment\n\n   \n  secret.env  \n#not-ignored\n",
			ignored:  []string{"secret.env"},
			kept:     []string{"#not-ignored", "a comment"},
		},
		{
			name:     "dot slash is cleaned",
			patterns: "./vendor",
			ignored:  []string{"vendor/x"},
		},
		{
			name: "no patterns keep everything",
			kept: []string{".git", ".git/HEAD", "Dockerfile"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := parseDockerignore(strings.NewReader(tt.patterns))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.ignored {
				if !d.ignored(p) {
					t.Errorf("%q is kept, want ignored", p)
				}
			}
			for _, p := range tt.kept {
				if d.ignored(p) {
					t.Errorf("%q is ignored, want kept", p)
				}
			}
		})
	}
}

func TestDockerignoreBadPattern(t *testing.T) {
	if _, err := parseDockerignore(strings.NewReader("ok\n[unclosed\n")); err == nil || err.Error() != `.dockerignore: bad pattern "[unclosed"` {
		t.Errorf("err = %v, want a bad pattern error", err)
	}
}

func TestDockerignoreReincludesBelow(t *testing.T) {
	d, err := parseDockerignore(strings.NewReader("docs\nvendor\n!docs/README.md\n!**/keep\n"))
	if err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]bool{"docs": true, "docs/sub": true, "vendor": true, "tmp": true} {
		if got := d.reincludesBelow(dir); got != want {
			t.Errorf("reincludesBelow(%q) = %v, want %v", dir, got, want)
		}
	}
	d, _ = parseDockerignore(strings.NewReader("docs\nvendor\n!docs/README.md\n"))
	for dir, want := range map[string]bool{"docs": true, "docs/sub": false, "vendor": false} {
		if got := d.reincludesBelow(dir); got != want {
			t.Errorf("without **: reincludesBelow(%q) = %v, want %v", dir, got, want)
		}
	}
}

func TestPackageSource(t *testing.T) {
	dir := sourceDir(t)
	writeFile(t, filepath.Join(dir, "docs", "guide.md"), "guide")
	writeFile(t, filepath.Join(dir, "docs", "api", "README.md"), "readme")
	writeFile(t, filepath.Join(dir, ".dockerignore"), "node_modules\n*.log\n!keep.log\ndocs\n!docs/api/README.md\n")
	var b bytes.Buffer
	if err := packageSource(dir, &b); err != nil {
		t.Fatal(err)
	}
	got := tarEntries(t, b.Bytes())
	want := []string{
		".dockerignore", "Dockerfile", "convox.yml",
		// The ignored docs directory is walked for the exception, and the
		// file's parents are in the archive.
		"docs/", "docs/api/", "docs/api/README.md",
		"keep.log", "main -> src/main.go", "src/", "src/main.go", "src/nested.log",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n%q\nwant:\n%q", got, want)
	}
	modes := tarModes(t, b.Bytes())
	if m := modes["src/main.go"]; m != 0o755 {
		t.Errorf("src/main.go mode %o, want 755", m)
	}
	if m := modes["Dockerfile"]; m != 0o644 {
		t.Errorf("Dockerfile mode %o, want 644", m)
	}
}

func TestPackageSourceFollowsTheDirectoryLink(t *testing.T) {
	dir := sourceDir(t)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := packageSource(link, &b); err != nil {
		t.Fatal(err)
	}
	if got := tarEntries(t, b.Bytes()); !slices.Contains(got, "Dockerfile") {
		t.Errorf("packaging through a link: %q", got)
	}
	if err := packageSource(filepath.Join(dir, "Dockerfile"), &b); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("packaging a file: %v", err)
	}
}

func TestGitInfo(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	if d, sha := gitInfo(context.Background(), dir); d != "" || sha != "" {
		t.Errorf("outside a repository: %q, %q; want nothing", d, sha)
	}
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_SYSTEM="+os.DevNull)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM debian\n")
	git("add", ".")
	git("commit", "-q", "-m", "first commit")
	head := git("rev-parse", "HEAD")

	d, sha := gitInfo(context.Background(), dir)
	if want := "build " + head[:10] + " first commit"; d != want || sha != head {
		t.Errorf("clean tree: %q, %q; want %q, %q", d, sha, want, head)
	}
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM alpine\n")
	if d, sha := gitInfo(context.Background(), dir); d != "" || sha != head {
		t.Errorf("changed tree: %q, %q; want no description, %q", d, sha, head)
	}
}

// tarModes maps a gzip'd tar's entry names to their permission bits.
func tarModes(t *testing.T, data []byte) map[string]int64 {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	modes := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return modes
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[h.Name] = h.Mode & 0o777
	}
}
