package api

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A rack started with `convox rack start` records how to reach it in its home
// directory; the CLI on the same machine reads that record when RACK_URL is
// not set. These names are the contract between the two.
const (
	// URLFile holds https://convox:PASSWORD@host:port (mode 0600).
	URLFile = "rack.url"
	// CertFile is the rack API's self-signed certificate, which a local
	// client pins instead of skipping verification.
	CertFile = "rack.crt"
)

// Home is the rack's home directory: CONVOX_HOME if set, else a per-user
// data directory ($XDG_DATA_HOME/convox, ~/.local/share/convox).
func Home() (string, error) {
	if h := os.Getenv("CONVOX_HOME"); h != "" {
		return h, nil
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "convox"), nil
	}
	u, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the rack home: %w (set CONVOX_HOME)", err)
	}
	return filepath.Join(u, ".local", "share", "convox"), nil
}

// ErrNoLocalRack means the home holds no record of a rack.
var ErrNoLocalRack = errors.New("no local rack")

// LocalRack reads the URL and TLS settings of the rack recorded in home.
func LocalRack(home string) (rackURL string, tlsConfig *tls.Config, err error) {
	data, err := os.ReadFile(filepath.Join(home, URLFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("%w in %s", ErrNoLocalRack, home)
	}
	if err != nil {
		return "", nil, fmt.Errorf("reading the local rack: %w", err)
	}
	rackURL = strings.TrimSpace(string(data))
	pem, err := os.ReadFile(filepath.Join(home, CertFile))
	if err != nil {
		// Without the certificate we cannot pin; fall back to what the
		// official CLI does.
		return rackURL, nil, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return rackURL, nil, nil
	}
	return rackURL, &tls.Config{RootCAs: pool}, nil
}
