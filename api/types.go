// Package api is the Convox rack API: the wire nouns with Convox's JSON names,
// the error kinds and their HTTP status codes, the Rack interface (the API's
// method set), the HTTP Server that serves any Rack, and the Client that
// speaks to one. It is the outer contract of the project, so it imports
// nothing of ours.
package api

import "time"

// Version is the version this rack reports in GET /system. The official CLI
// compares it as a string against old rack versions ("20190111211123") and
// parses it as major.minor.patch for newer features, so it must stay a 3.x.y.
const Version = "3.25.0"

// App is an application on the rack (spec §2.4).
type App struct {
	Generation string            `json:"generation,omitempty"`
	Locked     bool              `json:"locked"`
	Name       string            `json:"name"`
	Release    string            `json:"release"`
	Router     string            `json:"router"`
	Status     string            `json:"status"`
	Parameters map[string]string `json:"parameters"`
}

// App statuses (spec §2.5).
const (
	StatusCreating = "creating"
	StatusRunning  = "running"
	StatusUpdating = "updating"
	StatusRollback = "rollback"
	StatusDeleting = "deleting"
	StatusFailed   = "failed"
)

// AppUpdateOptions are the form fields of PUT /apps/{name}. A nil field is
// left unchanged.
type AppUpdateOptions struct {
	Lock       *bool
	Parameters map[string]string
}

// Budget is the v3 cost-cap record; a single host has none, so both fields are
// always null, which keeps the official CLI silent.
type Budget struct {
	Config any `json:"config"`
	State  any `json:"state"`
}

// System describes the rack itself (GET /system).
type System struct {
	Count      int               `json:"count"`
	Domain     string            `json:"domain"`
	Name       string            `json:"name"`
	Outputs    map[string]string `json:"outputs,omitempty"`
	Parameters map[string]string `json:"parameters,omitempty"`
	Provider   string            `json:"provider"`
	RackDomain string            `json:"rack-domain"`
	Region     string            `json:"region"`
	Status     string            `json:"status"`
	Type       string            `json:"type"`
	Version    string            `json:"version"`
}

// Build is an image built from an app's source (spec §2.4).
type Build struct {
	Id          string    `json:"id"`
	App         string    `json:"app"`
	Description string    `json:"description"`
	Entrypoint  string    `json:"entrypoint"`
	GitSha      string    `json:"git-sha"`
	Logs        string    `json:"logs"`
	Manifest    string    `json:"manifest"`
	Process     string    `json:"process"`
	Release     string    `json:"release"`
	Reason      string    `json:"reason"`
	Repository  string    `json:"repository"`
	Status      string    `json:"status"`
	Started     time.Time `json:"started"`
	Ended       time.Time `json:"ended"`
}

// Build statuses (spec §2.5).
const (
	BuildCreated  = "created"
	BuildRunning  = "running"
	BuildComplete = "complete"
	BuildFailed   = "failed"
)

// BuildCreateOptions are the form fields of POST /apps/{app}/builds.
type BuildCreateOptions struct {
	Description string
	GitSha      string
	Manifest    string // manifest file name in the source, default convox.yml
	NoCache     bool
	BuildArgs   []string // KEY=VALUE
}

// Release is a build plus environment; promoting it deploys it.
type Release struct {
	Id          string    `json:"id"`
	App         string    `json:"app"`
	Build       string    `json:"build"`
	Env         string    `json:"env"`
	Manifest    string    `json:"manifest"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
}

// ReleaseCreateOptions are the form fields of POST /apps/{app}/releases. A
// nil field is inherited from the parent release (the latest one unless
// ParentRelease names another).
type ReleaseCreateOptions struct {
	Build         *string
	Env           *string
	Description   *string
	ParentRelease *string
}

// ReleasePromoteOptions are the form fields of POST …/releases/{id}/promote.
type ReleasePromoteOptions struct {
	Force bool
	// Timeout is how long, in seconds, new processes have to become
	// healthy before the rack rolls back; 0 is the rack's default.
	Timeout int
}

// Process is one running container of an app (spec §2.4).
type Process struct {
	Id       string    `json:"id"`
	App      string    `json:"app"`
	Command  string    `json:"command"`
	Cpu      float64   `json:"cpu"`
	Gpu      int       `json:"gpu"`
	Host     string    `json:"host"`
	Image    string    `json:"image"`
	Instance string    `json:"instance"`
	Memory   float64   `json:"memory"`
	Name     string    `json:"name"`
	Ports    []string  `json:"ports"`
	Release  string    `json:"release"`
	Started  time.Time `json:"started"`
	Status   string    `json:"status"`
	Service  string    `json:"service,omitempty"`
}

// ProcessListOptions filter GET /apps/{app}/processes.
type ProcessListOptions struct {
	Release string
	Service string
}

// Service is a service of an app's active release (spec §2.4).
type Service struct {
	Count     int           `json:"count"`
	Cpu       int           `json:"cpu"`
	Domain    string        `json:"domain"`
	Gpu       int           `json:"gpu"`
	GpuVendor string        `json:"gpu-vendor"`
	Memory    int           `json:"memory"`
	Name      string        `json:"name"`
	Nlb       []any         `json:"nlb"`
	Ports     []ServicePort `json:"ports"`
}

// ServicePort is a port of a service; Balancer is 443 for the routed port.
type ServicePort struct {
	Balancer    int    `json:"balancer"`
	Certificate string `json:"certificate"`
	Container   int    `json:"container"`
}

// ServiceUpdateOptions are the form fields of PUT /apps/{app}/services/{name};
// nil fields are unchanged.
type ServiceUpdateOptions struct {
	Count  *int
	Cpu    *int
	Memory *int
}

// Object is a stored blob's address; the field has no JSON tag in Convox.
type Object struct {
	Url string
}

// LogsOptions select log lines; they travel as websocket headers.
type LogsOptions struct {
	Filter string
	Follow *bool
	Prefix *bool
	Since  *time.Duration
	Tail   *int
}

// ProcessRunOptions start a one-off process (POST
// /apps/{app}/services/{service}/processes, options as headers).
type ProcessRunOptions struct {
	Command     string
	Release     string // default: the app's active release
	Environment map[string]string
	Height      int
	Width       int
}

// ProcessExecOptions run a command in a process (SOCKET
// /apps/{app}/processes/{pid}/exec, options as headers).
type ProcessExecOptions struct {
	// Entrypoint prepends the image's ENTRYPOINT to the command, as
	// `convox run` does.
	Entrypoint bool
	Tty        bool
	Height     int
	Width      int
	// DisableStdin runs the command with no input.
	DisableStdin bool
}

// ExitMarker ends an exec stream: the text ExitMarker + ":" + code + "\n"
// carries the command's exit code to the client (spec §2.2).
const ExitMarker = "F1E49A85-0AD7-4AEF-A618-C249C6E6568D"

// Balancer is a TCP load balancer of an app (spec §2.4).
type Balancer struct {
	Name     string         `json:"name"`
	Endpoint string         `json:"endpoint"`
	Ports    []BalancerPort `json:"ports"`
	Service  string         `json:"service"`
}

// BalancerPort forwards Source on the host to Target on the service.
type BalancerPort struct {
	Protocol string `json:"protocol"`
	Source   int    `json:"source"`
	Target   int    `json:"target"`
}
