package api

import (
	"context"
	"io"
)

// Rack is the Convox rack API's method set, named Noun+Verb as Convox names
// them so that routes, client and engine line up one to one. The engine
// implements it; so does Client, which lets the CLI and tests use a remote
// rack and a local one the same way. It is wide because it mirrors an
// external protocol; every other interface in the project stays small.
//
// Methods returning an io.ReadCloser stream (logs): the caller closes it.
type Rack interface {
	SystemGet(ctx context.Context) (*System, error)
	SystemLogs(ctx context.Context, opts LogsOptions) (io.ReadCloser, error)
	// SystemCA is the PEM certificate of the CA that signs the router's
	// certificates, for users to trust (not in Convox).
	SystemCA(ctx context.Context) ([]byte, error)

	AppCreate(ctx context.Context, name string) (*App, error)
	AppGet(ctx context.Context, name string) (*App, error)
	AppList(ctx context.Context) ([]App, error)
	AppUpdate(ctx context.Context, name string, opts AppUpdateOptions) error
	AppDelete(ctx context.Context, name string) error
	AppCancel(ctx context.Context, name string) error
	AppBudget(ctx context.Context, name string) (*Budget, error)
	AppLogs(ctx context.Context, name string, opts LogsOptions) (io.ReadCloser, error)

	ObjectStore(ctx context.Context, app, key string, r io.Reader) (*Object, error)
	ObjectFetch(ctx context.Context, app, key string) (io.ReadCloser, error)

	BuildCreate(ctx context.Context, app, url string, opts BuildCreateOptions) (*Build, error)
	BuildGet(ctx context.Context, app, id string) (*Build, error)
	BuildList(ctx context.Context, app string, limit int) ([]Build, error)
	BuildLogs(ctx context.Context, app, id string, opts LogsOptions) (io.ReadCloser, error)
	BuildExport(ctx context.Context, app, id string, w io.Writer) error
	BuildImport(ctx context.Context, app string, r io.Reader) (*Build, error)

	ReleaseCreate(ctx context.Context, app string, opts ReleaseCreateOptions) (*Release, error)
	ReleaseGet(ctx context.Context, app, id string) (*Release, error)
	ReleaseList(ctx context.Context, app string, limit int) ([]Release, error)
	ReleasePromote(ctx context.Context, app, id string, opts ReleasePromoteOptions) error

	ProcessList(ctx context.Context, app string, opts ProcessListOptions) ([]Process, error)
	ProcessGet(ctx context.Context, app, pid string) (*Process, error)
	ProcessStop(ctx context.Context, app, pid string) error
	ProcessRun(ctx context.Context, app, service string, opts ProcessRunOptions) (*Process, error)
	// ProcessExec runs command in a process with rw as its terminal: what
	// the command prints is written to rw, and rw's input is its stdin.
	// It returns the command's exit code.
	ProcessExec(ctx context.Context, app, pid, command string, rw io.ReadWriter, opts ProcessExecOptions) (int, error)
	ProcessLogs(ctx context.Context, app, pid string, opts LogsOptions) (io.ReadCloser, error)

	ServiceList(ctx context.Context, app string) ([]Service, error)
	ServiceUpdate(ctx context.Context, app, name string, opts ServiceUpdateOptions) error
	ServiceRestart(ctx context.Context, app, name string) error
	ServiceLogs(ctx context.Context, app, name string, opts LogsOptions) (io.ReadCloser, error)

	BalancerList(ctx context.Context, app string) ([]Balancer, error)
}
