package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunEntrypointRelease: `convox run` prepends the image's ENTRYPOINT
// unless told not to, and runs an older release when asked.
func TestRunEntrypointRelease(t *testing.T) {
	r := newRack(t)
	r.start()
	dir := sampleApp(t, "")
	dockerfile := "FROM convoxtest/debian:bookworm\nCOPY server /usr/local/bin/server\nENTRYPOINT [\"env\", \"VIA_ENTRYPOINT=yes\"]\nCMD [\"server\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	r.convox("apps", "create", "entry").expect(t, "Creating entry... OK\n", "", 0)
	r1, res := r.deploy(t, "entry", dir)
	if res.code != 0 {
		t.Fatalf("deploy: %s %s", res.stdout, res.stderr)
	}
	r.convox("run", "web", `sh -c 'echo $VIA_ENTRYPOINT'`, "-a", "entry").expect(t, "yes\n", "", 0)
	r.convox("run", "web", "--entrypoint=false", `echo "[$VIA_ENTRYPOINT]"`, "-a", "entry").expect(t, "[]\n", "", 0)

	if res := r.convox("env", "set", "X=1", "-a", "entry", "--promote"); res.code != 0 {
		t.Fatalf("promote: %s %s", res.stdout, res.stderr)
	}
	r.convox("run", "web", "--release", r1, `sh -c 'echo $RELEASE'`, "-a", "entry").expect(t, r1+"\n", "", 0)
}

// TestRunInterrupt: Ctrl-C on an attached `convox run` ends it and its
// process.
func TestRunInterrupt(t *testing.T) {
	r := newRack(t)
	r.start()
	dir := sampleApp(t, "")
	r.convox("apps", "create", "intr").expect(t, "Creating intr... OK\n", "", 0)
	if _, res := r.deploy(t, "intr", dir); res.code != 0 {
		t.Fatalf("deploy: %s %s", res.stdout, res.stderr)
	}
	cmd := exec.Command(binary, "run", "web", "echo started; sleep 120", "-a", "intr")
	cmd.Env = r.env()
	out := &syncBuffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the command started", func() bool {
		return strings.Contains(out.String(), "started")
	})
	// The attached run's process waits with `sleep 3600` (as Convox's does).
	if ps := r.convox("ps", "-a", "intr").stdout; !strings.Contains(ps, "sleep 3600") {
		t.Fatalf("the one-off process is not in ps:\n%s", ps)
	}
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("convox run did not end within 20s of Ctrl-C")
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit code after Ctrl-C = %d, want 130 (output %q)", code, out.String())
	}
	eventually(t, 30*time.Second, "the one-off process gone", func() bool {
		return !strings.Contains(r.convox("ps", "-a", "intr").stdout, "sleep 3600")
	})
}
