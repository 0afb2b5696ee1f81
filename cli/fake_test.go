package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/singlehost/convox/api"
)

// testNow is the clock of every test that humanises times.
var testNow = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

func testClock() time.Time { return testNow }

// deployRack is fakeRack with builds, releases, processes and services, and
// a scripted rack behind each change: after a promote, scale or restart the
// app reports updating for `updating` reads, then runs (the promoted
// release, or with rollback the previous one). Its state is guarded by the
// embedded fakeRack's mu.
type deployRack struct {
	*fakeRack

	builds    []api.Build   // newest first
	releases  []api.Release // newest first
	processes []api.Process
	services  []api.Service

	// buildLog is what BuildLogs streams.
	buildLog string
	// buildStatuses are the statuses BuildGet reports for a new build, in
	// turn; the last one sticks. "complete" makes its release.
	buildStatuses []string
	// events are the app's log lines, which AppLogs streams and ends.
	events []string
	// updating is how many AppGets report a change still in progress
	// (each costs the CLI a poll interval).
	updating int
	// rollback makes a promote end on the previous release.
	rollback bool

	// What the CLI asked for.
	objects   map[string][]byte
	sourceURL string
	buildOpts api.BuildCreateOptions
	created   []api.ReleaseCreateOptions
	promotes  []promoteCall
	scaled    []api.ServiceUpdateOptions
	restarted []string
	stopped   []string
	logOpts   []api.LogsOptions
	imported  string

	// A change in flight: AppGets left before it ends, and the release the
	// app then runs ("" to keep it). begun is the event the rack logs as
	// it begins, in place of the first of events.
	begun    string
	changes  int
	changing bool
	left     int
	target   string
	// newBuild is the build whose statuses buildStatuses script.
	newBuild string
	ids      int
}

type promoteCall struct {
	id   string
	opts api.ReleasePromoteOptions
}

var (
	buildDone = api.Build{
		Id: "BABCDEFGHI", App: "myapp", Status: api.BuildComplete, Release: "RABCDEFGHI",
		Description: "build 1a2b3c4d5e first", Manifest: "services:\n  web:\n    build: .\n    port: 5000\n\n",
		Started: testNow.Add(-48*time.Hour - 2*time.Minute), Ended: testNow.Add(-48 * time.Hour),
	}
	buildRunning = api.Build{
		Id: "BRUNNINGXX", App: "myapp", Status: api.BuildRunning, Started: testNow.Add(-3 * time.Minute),
	}
	releaseNewest = api.Release{
		Id: "RNEWESTREL", App: "myapp", Build: "BABCDEFGHI", Env: "FOO=bar\nNEW=1",
		Created: testNow.Add(-time.Hour), Description: "env add:NEW",
	}
	releaseActive = api.Release{
		Id: "RABCDEFGHI", App: "myapp", Build: "BABCDEFGHI", Env: "BAZ=quux\nFOO=bar",
		Created: testNow.Add(-48 * time.Hour), Description: "build 1a2b3c4d5e first",
	}
	releaseEmpty = api.Release{Id: "ROLDRELEAS", App: "myapp", Created: testNow.Add(-72 * time.Hour)}
)

// newDeployRack is a rack with myapp running RABCDEFGHI (two web processes
// and a starting worker) and a newer, unpromoted release, plus apps.
func newDeployRack(apps ...api.App) *deployRack {
	d := &deployRack{
		fakeRack: newFakeRack(append([]api.App{myapp}, apps...)...),
		builds:   []api.Build{buildRunning, buildDone},
		releases: []api.Release{releaseNewest, releaseActive, releaseEmpty},
		objects:  map[string][]byte{},
		buildLog: "Building: .\nStep 1/2 : FROM debian\nSuccessfully built 0123456789ab\n",
		processes: []api.Process{
			{Id: "web-6499468bf8-8wkjj", App: "myapp", Name: "web", Status: "running", Release: "RABCDEFGHI",
				Started: testNow.Add(-2 * time.Hour), Command: "bin/web", Instance: "localhost"},
			{Id: "web-6499468bf8-x2k9p", App: "myapp", Name: "web", Status: "running", Release: "RABCDEFGHI",
				Started: testNow.Add(-2 * time.Hour), Command: "bin/web", Instance: "localhost"},
			{Id: "worker-5d8f7c-abcde", App: "myapp", Name: "worker", Status: "starting", Release: "RNEWESTREL",
				Started: testNow.Add(-30 * time.Second), Command: "bin/worker --queue default", Instance: "localhost"},
		},
		services: []api.Service{
			{Name: "worker", Count: 1, Cpu: 250, Memory: 256, Ports: []api.ServicePort{}},
			{Name: "web", Count: 2, Cpu: 250, Memory: 512, Domain: "web.myapp.localhost",
				Ports: []api.ServicePort{{Balancer: 443, Container: 5000}, {Container: 9000}}},
		},
		events: []string{
			"2026-01-15T12:00:00Z system/promote Promoting release",
			"2026-01-15T12:00:01Z service/web/web-7c9d8f-q2x4z listening on :5000",
			"2026-01-15T12:00:02Z system/web Started process web-7c9d8f-q2x4z",
			"2026-01-15T12:00:03Z service/worker/worker-5d8f7c-abcde GET /jobs",
			"2026-01-15T12:00:04Z system/web Process web-7c9d8f-q2x4z is healthy",
		},
	}
	return d
}

func (d *deployRack) newID(prefix string) string {
	d.ids++
	return fmt.Sprintf("%sNEW%06d", prefix, d.ids)
}

func (d *deployRack) app(name string) (*api.App, error) {
	a, ok := d.apps[name]
	if !ok {
		return nil, api.Errorf(api.ErrNotFound, "app not found: %s", name)
	}
	return a, nil
}

// change starts a change that ends with the app running target ("" keeps
// its release).
func (d *deployRack) change(a *api.App, target, begun string) {
	a.Status = api.StatusUpdating
	d.changing, d.left, d.target, d.begun = true, d.updating, target, begun
	d.changes++
}

func (d *deployRack) AppGet(ctx context.Context, name string) (*api.App, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, err := d.app(name)
	if err != nil {
		return nil, err
	}
	if d.changing {
		if d.left > 0 {
			d.left--
		} else {
			a.Status, d.changing = api.StatusRunning, false
			if d.target != "" {
				a.Release = d.target
			}
		}
	}
	c := *a
	return &c, nil
}

func (d *deployRack) AppLogs(ctx context.Context, name string, opts api.LogsOptions) (io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.app(name); err != nil {
		return nil, err
	}
	d.logOpts = append(d.logOpts, opts)
	// A stream opened to watch a change (the last second, followed) is
	// read once the CLI has made its change, which decides how it begins.
	watching := opts.Follow != nil && *opts.Follow && opts.Since != nil && *opts.Since == time.Second
	changes := d.changes
	return io.NopCloser(&lazyReader{text: func() string {
		for watching {
			d.mu.Lock()
			begun := d.changes > changes
			d.mu.Unlock()
			if begun || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		var b strings.Builder
		for i, e := range d.events {
			if i == 0 && d.begun != "" {
				e = e[:strings.IndexByte(e, ' ')+1] + d.begun
			}
			if strings.Contains(e, opts.Filter) {
				b.WriteString(e + "\n")
			}
		}
		return b.String()
	}}), nil
}

// lazyReader reads text(), called at the first Read.
type lazyReader struct {
	text func() string
	r    io.Reader
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.r == nil {
		l.r = strings.NewReader(l.text())
	}
	return l.r.Read(p)
}

func (d *deployRack) ObjectStore(ctx context.Context, app, key string, r io.Reader) (*api.Object, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.app(app); err != nil {
		return nil, err
	}
	d.objects[key] = data
	return &api.Object{Url: "object://" + app + "/" + key}, nil
}

func (d *deployRack) BuildCreate(ctx context.Context, app, url string, opts api.BuildCreateOptions) (*api.Build, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.app(app); err != nil {
		return nil, err
	}
	d.sourceURL, d.buildOpts = url, opts
	b := api.Build{Id: d.newID("B"), App: app, Description: opts.Description, Status: api.BuildCreated, Started: testNow}
	d.builds = append([]api.Build{b}, d.builds...)
	d.newBuild = b.Id
	return &b, nil
}

func (d *deployRack) build(id string) (*api.Build, error) {
	for i := range d.builds {
		if d.builds[i].Id == id {
			return &d.builds[i], nil
		}
	}
	return nil, api.Errorf(api.ErrNotFound, "build not found: %s", id)
}

func (d *deployRack) BuildGet(ctx context.Context, app, id string) (*api.Build, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := d.build(id)
	if err != nil {
		return nil, err
	}
	if id == d.newBuild && len(d.buildStatuses) > 0 {
		status := d.buildStatuses[0]
		if len(d.buildStatuses) > 1 {
			d.buildStatuses = d.buildStatuses[1:]
		}
		if status == api.BuildComplete && b.Release == "" {
			b.Release = d.createRelease(app, api.ReleaseCreateOptions{Build: &b.Id}).Id
			b.Ended = testNow.Add(time.Minute)
		}
		b.Status = status
	}
	c := *b
	return &c, nil
}

func (d *deployRack) BuildList(ctx context.Context, app string, limit int) ([]api.Build, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.builds[:min(limit, len(d.builds))]), nil
}

func (d *deployRack) BuildLogs(ctx context.Context, app, id string, opts api.LogsOptions) (io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.build(id); err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader(d.buildLog)), nil
}

func (d *deployRack) BuildExport(ctx context.Context, app, id string, w io.Writer) error {
	d.mu.Lock()
	_, err := d.build(id)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, "export of "+id)
	return err
}

func (d *deployRack) BuildImport(ctx context.Context, app string, r io.Reader) (*api.Build, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.imported = string(data)
	b := api.Build{Id: d.newID("B"), App: app, Status: api.BuildComplete, Started: testNow, Ended: testNow}
	d.builds = append([]api.Build{b}, d.builds...)
	d.builds[0].Release = d.createRelease(app, api.ReleaseCreateOptions{Build: &b.Id}).Id
	c := d.builds[0]
	return &c, nil
}

// createRelease makes a release from the parent (the latest unless named),
// as the rack does (spec §2.6), and records the options.
func (d *deployRack) createRelease(app string, opts api.ReleaseCreateOptions) *api.Release {
	d.created = append(d.created, opts)
	rel := api.Release{Id: d.newID("R"), App: app, Created: testNow}
	for _, p := range d.releases {
		if p.App == app && (opts.ParentRelease == nil || *opts.ParentRelease == p.Id) {
			rel.Build, rel.Env = p.Build, p.Env
			break
		}
	}
	if opts.Build != nil {
		rel.Build = *opts.Build
	}
	if opts.Env != nil {
		rel.Env = *opts.Env
	}
	d.releases = append([]api.Release{rel}, d.releases...)
	return &rel
}

func (d *deployRack) release(app, id string) (*api.Release, error) {
	for i := range d.releases {
		if d.releases[i].App == app && d.releases[i].Id == id {
			return &d.releases[i], nil
		}
	}
	return nil, api.Errorf(api.ErrNotFound, "release not found: %s", id)
}

func (d *deployRack) ReleaseCreate(ctx context.Context, app string, opts api.ReleaseCreateOptions) (*api.Release, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.app(app); err != nil {
		return nil, err
	}
	if opts.ParentRelease != nil {
		if _, err := d.release(app, *opts.ParentRelease); err != nil {
			return nil, err
		}
	}
	return d.createRelease(app, opts), nil
}

func (d *deployRack) ReleaseGet(ctx context.Context, app, id string) (*api.Release, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.release(app, id)
	if err != nil {
		return nil, err
	}
	c := *r
	return &c, nil
}

func (d *deployRack) ReleaseList(ctx context.Context, app string, limit int) ([]api.Release, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.app(app); err != nil {
		return nil, err
	}
	var rs []api.Release
	for _, r := range d.releases {
		if r.App == app && len(rs) < limit {
			rs = append(rs, r)
		}
	}
	return rs, nil
}

func (d *deployRack) ReleasePromote(ctx context.Context, app, id string, opts api.ReleasePromoteOptions) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, err := d.app(app)
	if err != nil {
		return err
	}
	if _, err := d.release(app, id); err != nil {
		return err
	}
	if a.Status != api.StatusRunning && !opts.Force {
		return api.Errorf(api.ErrForbidden, "app is currently updating")
	}
	d.promotes = append(d.promotes, promoteCall{id, opts})
	target := id
	if d.rollback {
		target = a.Release
	}
	d.change(a, target, "system/promote Promoting release "+id)
	a.Release = id
	return nil
}

func (d *deployRack) ProcessList(ctx context.Context, app string, opts api.ProcessListOptions) ([]api.Process, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ps []api.Process
	for _, p := range d.processes {
		if (opts.Release == "" || p.Release == opts.Release) && (opts.Service == "" || p.Name == opts.Service) {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

func (d *deployRack) ProcessGet(ctx context.Context, app, pid string) (*api.Process, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.processes {
		if p.Id == pid {
			return &p, nil
		}
	}
	return nil, api.Errorf(api.ErrNotFound, "process not found: %s", pid)
}

func (d *deployRack) ProcessStop(ctx context.Context, app, pid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, p := range d.processes {
		if p.Id == pid {
			d.processes = slices.Delete(d.processes, i, i+1)
			d.stopped = append(d.stopped, pid)
			return nil
		}
	}
	return api.Errorf(api.ErrNotFound, "process not found: %s", pid)
}

func (d *deployRack) ServiceList(ctx context.Context, app string) ([]api.Service, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.app(app); err != nil {
		return nil, err
	}
	return slices.Clone(d.services), nil
}

// service finds a service of a running app.
func (d *deployRack) service(app, name string) (*api.App, error) {
	a, err := d.app(app)
	if err != nil {
		return nil, err
	}
	for _, s := range d.services {
		if s.Name == name {
			if a.Status != api.StatusRunning {
				return nil, api.Errorf(api.ErrForbidden, "app is currently updating")
			}
			return a, nil
		}
	}
	return nil, api.Errorf(api.ErrNotFound, "service not found: %s", name)
}

func (d *deployRack) ServiceUpdate(ctx context.Context, app, name string, opts api.ServiceUpdateOptions) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, err := d.service(app, name)
	if err != nil {
		return err
	}
	d.scaled = append(d.scaled, opts)
	d.change(a, "", "system/scale Scaling "+name)
	return nil
}

func (d *deployRack) ServiceRestart(ctx context.Context, app, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, err := d.service(app, name)
	if err != nil {
		return err
	}
	d.restarted = append(d.restarted, name)
	d.change(a, "", "system/restart Restarting "+name)
	return nil
}
