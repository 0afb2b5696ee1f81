package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/singlehost/convox/api"
)

// defaultRackURL is where `convox rack start` listens by default. The CLI
// falls back to it when nothing says where the rack is, so that the error
// names the address a user would expect.
const defaultRackURL = "https://127.0.0.1:5443"

// Env is everything one run of the CLI takes from its surroundings. Execute
// fills it from the process; tests fill it themselves, so no command reads
// os.Args, os.Getenv, the working directory or the standard streams.
//
// Run treats a nil stream as empty (Stdin) or discarded (Stdout, Stderr),
// and a nil Getenv as an empty environment.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// Getenv looks up an environment variable ("" if unset): RACK_URL,
	// CONVOX_HOME and EDITOR.
	Getenv func(key string) string

	// Dir is the working directory, where `.convox/app` is looked up and
	// whose name is the app of last resort.
	Dir string

	// Connect returns a client for the rack. It is called only by commands
	// that talk to the rack; nil means the usual resolution (see rack).
	Connect func() (*api.Client, error)

	// Now is the clock against which times are humanised ("2 minutes
	// ago"); nil is time.Now.
	Now func() time.Time
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// rack returns a client for the rack the CLI talks to: Connect if set, else
// RACK_URL (the official CLI's variable), else the rack recorded in the home
// by `convox rack start`, else the default address. Building the client does
// not contact the rack; an absent rack shows up as an *api.ConnError on the
// first call.
func (e *Env) rack() (*api.Client, error) {
	if e.Connect != nil {
		return e.Connect()
	}
	if u := strings.TrimSpace(e.Getenv("RACK_URL")); u != "" {
		return api.NewClient(u, nil)
	}
	home := e.Getenv("CONVOX_HOME")
	if home == "" {
		var err error
		if home, err = api.Home(); err != nil {
			return nil, err
		}
	}
	u, tlsConfig, err := api.LocalRack(home)
	if errors.Is(err, api.ErrNoLocalRack) {
		return api.NewClient(defaultRackURL, nil)
	}
	if err != nil {
		return nil, err
	}
	return api.NewClient(u, tlsConfig)
}

// app resolves the app a command acts on, in Convox's order: the positional
// argument (for commands that take [app]), the --app flag, the file
// .convox/app in the working directory, then the directory's name.
func (e *Env) app(args []string, flag string) (string, error) {
	if len(args) > 0 && args[0] != "" {
		return args[0], nil
	}
	if flag != "" {
		return flag, nil
	}
	data, err := os.ReadFile(filepath.Join(e.Dir, ".convox", "app"))
	if err == nil {
		if name := strings.TrimSpace(string(data)); name != "" {
			return name, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading the app name: %w", err)
	}
	name := filepath.Base(e.Dir)
	if name == "" || name == "." || name == string(filepath.Separator) {
		return "", errors.New("cannot tell which app: use --app")
	}
	return name, nil
}

// path resolves a path the user typed against the working directory.
func (e *Env) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(e.Dir, p)
}

// isTerminal reports whether a stream is a terminal rather than a pipe or
// a file. Only an *os.File can be one, so the streams of in-process tests
// never are.
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
