package engine

import (
	"context"
	"io"
	"net/netip"
	"time"
)

// Label keys carried by every container, network and volume the rack
// creates. They are how the rack recognises what is its own: reconciliation
// and app deletion select by them, never by name.
const (
	LabelRack     = "convox.rack"
	LabelApp      = "convox.app"
	LabelType     = "convox.type" // service|timer|resource|run|build
	LabelService  = "convox.service"
	LabelResource = "convox.resource"
	LabelTimer    = "convox.timer"
	LabelRelease  = "convox.release"
	LabelProcess  = "convox.process"
)

// Labels select runtime objects: an object matches when it carries every
// key with the given value.
type Labels map[string]string

// Copy returns an independent copy of l.
func (l Labels) Copy() Labels {
	c := make(Labels, len(l))
	for k, v := range l {
		c[k] = v
	}
	return c
}

// Runtime is what the engine needs from a container runtime, in workload
// terms: images, processes, networks, volumes and a stream of process
// events. Implementations live in sibling packages (docker/), bound every
// call with a timeout, wrap ErrNotFound for missing objects and
// ErrUnavailable when the runtime does not answer, and name the operation
// in their errors ("listing processes: …").
type Runtime interface {
	Images
	Processes
	// NetworkEnsure creates the named network with labels if it does not
	// exist yet.
	NetworkEnsure(ctx context.Context, name string, labels Labels) error
	// VolumeEnsure creates the named volume with labels if it does not
	// exist yet. Volumes outlive the processes that mount them.
	VolumeEnsure(ctx context.Context, name string, labels Labels) error
	// Purge removes every process (killing it), network and volume that
	// carries all of sel. It is idempotent.
	Purge(ctx context.Context, sel Labels) error
	// Events streams process state changes for processes carrying sel,
	// until ctx ends or the runtime fails (the error channel then gets one
	// error and both channels close).
	Events(ctx context.Context, sel Labels) (<-chan Event, <-chan error)
}

// Images builds and keeps images.
type Images interface {
	// ImageBuild builds spec.Context (a tar stream) and tags the result
	// spec.Tag, writing the build's human-readable output to out as it
	// happens. A failed build returns an error carrying Docker's message.
	ImageBuild(ctx context.Context, spec BuildSpec, out io.Writer) error
	// ImageInspect describes a local image; ErrNotFound if absent.
	ImageInspect(ctx context.Context, ref string) (Image, error)
	// ImagePull fetches ref from its registry, writing progress to out.
	ImagePull(ctx context.Context, ref string, out io.Writer) error
	// ImageTag gives the image src the additional name dst.
	ImageTag(ctx context.Context, src, dst string) error
	// ImageRemove removes a name (and the image when it was the last).
	ImageRemove(ctx context.Context, ref string) error
	// ImageSave writes refs as one `docker save` tar archive.
	ImageSave(ctx context.Context, refs []string, w io.Writer) error
	// ImageLoad loads a `docker save` archive.
	ImageLoad(ctx context.Context, r io.Reader) error
}

// Processes runs containers.
type Processes interface {
	// ProcessStart creates and starts a container.
	ProcessStart(ctx context.Context, spec ProcessSpec) (Process, error)
	// ProcessList returns every container carrying sel, running or not.
	ProcessList(ctx context.Context, sel Labels) ([]Process, error)
	// ProcessInspect describes one container; ErrNotFound if absent.
	ProcessInspect(ctx context.Context, id string) (Process, error)
	// ProcessStop sends SIGTERM, then SIGKILL after grace.
	ProcessStop(ctx context.Context, id string, grace time.Duration) error
	// ProcessRemove removes a container, killing it if it still runs.
	ProcessRemove(ctx context.Context, id string) error
	// ProcessExec runs a command inside a running process and returns its
	// exit code once it ends and its output has been copied. An error is
	// returned only when the command could not be run at all (the process
	// is gone); a command that is not found is an exit code (126/127)
	// with the runtime's message on Stderr, as `docker exec` shows it.
	// When ctx ends the command's streams are closed and the command is
	// left to the process (it dies with it).
	ProcessExec(ctx context.Context, id string, opts ExecOptions) (int, error)
	// ProcessLogs streams a container's output, stdout and stderr merged,
	// one line per write, from since (zero: the beginning); follow keeps
	// the stream open until the container stops or ctx ends.
	ProcessLogs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error)
}

// BuildSpec describes one image build.
type BuildSpec struct {
	Context    io.Reader // tar stream of the build context
	Dockerfile string    // path inside the context
	Tag        string
	Args       map[string]string
	Labels     Labels
	NoCache    bool
}

// Image is a local image.
type Image struct {
	ID         string
	Entrypoint []string
	Cmd        []string
	Env        []string
	// Ports are the TCP ports the image EXPOSEs.
	Ports []int
}

// Mount attaches a named volume (Volume) or a host path (Source) at Target.
type Mount struct {
	Volume string
	Source string
	Target string
}

// ProcessSpec is a container to run.
type ProcessSpec struct {
	Name       string // container name, unique on the host
	Hostname   string
	Image      string
	Entrypoint []string // nil: the image's
	Command    []string // nil: the image's CMD
	Env        map[string]string
	Labels     Labels
	Network    string   // network to join
	Aliases    []string // DNS names on that network
	// Publish lists container TCP ports to publish on 127.0.0.1 at an
	// ephemeral host port (see Process.Ports).
	Publish []int
	// CPU is the process's share of the CPUs under contention, in
	// millicores (a request, as Convox's scale.cpu is): it weighs against
	// other processes, it does not cap. 0 = the runtime's default weight.
	CPU int
	// CPULimit caps the process at this many millicores; 0 = no cap.
	CPULimit int
	// Memory caps the process's memory, in MB; 0 = no cap.
	Memory     int
	Init       bool
	Privileged bool
	Mounts     []Mount
	// StopGrace is how long the runtime itself waits after SIGTERM when
	// it stops the container (e.g. on engine shutdown).
	StopGrace time.Duration
}

// Process states, as Processes report them.
const (
	StateCreated = "created"
	StateRunning = "running"
	StateExited  = "exited"
	StateDead    = "dead"
)

// Process is a container as the runtime sees it.
type Process struct {
	ID        string // runtime id
	Name      string
	Image     string
	Command   []string // entrypoint + cmd as run
	Labels    Labels
	State     string
	ExitCode  int
	OOMKilled bool
	Created   time.Time
	Started   time.Time
	Finished  time.Time
	// IP is the process's address on its network.
	IP string
	// Ports maps each published container port to its address on the host.
	Ports map[int]netip.AddrPort
}

// Running reports whether the process is running.
func (p Process) Running() bool { return p.State == StateRunning }

// ExecOptions describe a command to run in a process.
type ExecOptions struct {
	Command []string
	Env     map[string]string // added to the process's environment
	// Tty allocates a pseudo-terminal of Height×Width (24×80 when zero):
	// stdout and stderr are then one stream, written to Stdout, and the
	// end of Stdin does not end the command's input: as on a real
	// terminal, a ^D in Stdin does.
	Tty           bool
	Height, Width int
	Stdin         io.Reader // nil: no stdin (the command sees EOF)
	Stdout        io.Writer
	Stderr        io.Writer
}

// LogOptions select a process's output.
type LogOptions struct {
	Follow bool
	Since  time.Time
	Tail   int // 0: all
	// Timestamps prefixes each line with its RFC 3339 nano time and a space.
	Timestamps bool
}

// Event is a change of a process's state.
type Event struct {
	ID       string
	Action   string // start, die, stop, kill, oom, destroy, health_status…
	Labels   Labels
	ExitCode int
	Time     time.Time
}
