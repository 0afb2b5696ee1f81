package e2e

import (
	"os"
	"path/filepath"
	"testing"
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
