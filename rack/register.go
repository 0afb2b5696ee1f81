package rack

import (
	"fmt"
	"os"
	"path/filepath"
)

// register records the rack where the official Convox CLI looks for racks
// (spec §6.2), without trailing newlines as the CLI writes them itself:
// racks/<name> holds the URL (a "direct" rack) and rack holds
// the name of the selected one, so `convox apps` from the official CLI works
// with no set-up. dir is the settings directory; empty means CONVOX_CONFIG,
// else the user's config dir + convox.
func register(dir, name, rackURL string) error {
	if dir == "" {
		dir = os.Getenv("CONVOX_CONFIG")
	}
	if dir == "" {
		cfg, err := os.UserConfigDir()
		if err != nil {
			return fmt.Errorf("finding the Convox settings directory: %w", err)
		}
		dir = filepath.Join(cfg, "convox")
	}
	racks := filepath.Join(dir, "racks")
	if err := os.MkdirAll(racks, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", racks, err)
	}
	// A directory of that name is a Terraform rack of the official CLI's;
	// never replace it.
	if fi, err := os.Stat(filepath.Join(racks, name)); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a Terraform rack of the Convox CLI; start this rack with another --name", filepath.Join(racks, name))
	}
	if err := writeFile(filepath.Join(racks, name), rackURL); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "rack"), name)
}
