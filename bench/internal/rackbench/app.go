package rackbench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BaseImage is what the sample app's Dockerfile builds FROM; it is made
// locally by testdata/images/build (no registry is reachable).
const BaseImage = "convoxtest/debian:bookworm"

// RepoRoot finds the module's directory from the working directory up;
// how says how to run the benchmark from there when it is not found.
func RepoRoot(how string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/singlehost/convox\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run it from the convox repository (%s)", how)
		}
		dir = parent
	}
}

// SampleApp writes the sample app into dir/src, as the end-to-end tests
// do: testdata/apps/web's Dockerfile and .dockerignore, manifest as its
// convox.yml (testdata/apps/web's own when manifest is empty) and the
// sample server built from testdata/apps/server. It returns the directory.
func SampleApp(ctx context.Context, root, dir, manifest string) (string, error) {
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	files := []string{"Dockerfile", ".dockerignore"}
	if manifest == "" {
		files = append(files, "convox.yml")
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, "testdata", "apps", "web", f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(src, f), data, 0o644); err != nil {
			return "", err
		}
	}
	if manifest != "" {
		if err := os.WriteFile(filepath.Join(src, "convox.yml"), []byte(manifest), 0o644); err != nil {
			return "", err
		}
	}
	err := runCmd(ctx, root, []string{"CGO_ENABLED=0"}, "go", "build", "-o", filepath.Join(src, "server"), "./testdata/apps/server")
	if err != nil {
		return "", fmt.Errorf("building the sample server: %w", err)
	}
	return src, nil
}

// EnsureBaseImage builds BaseImage when the host lacks it.
func EnsureBaseImage(ctx context.Context, root string) error {
	if exec.CommandContext(ctx, "docker", "image", "inspect", BaseImage).Run() == nil {
		return nil
	}
	Logf("%s is missing: running testdata/images/build debian", BaseImage)
	if err := runCmd(ctx, root, nil, filepath.Join(root, "testdata", "images", "build"), "debian"); err != nil {
		return fmt.Errorf("building %s: %w", BaseImage, err)
	}
	return nil
}

// runCmd runs a command in dir with extra environment, its output shown
// only when it fails.
func runCmd(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
