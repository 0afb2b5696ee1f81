package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

func appPath(app string, parts ...string) string {
	p := "/apps/" + url.PathEscape(app)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

func (c *Client) AppLogs(ctx context.Context, name string, opts LogsOptions) (io.ReadCloser, error) {
	return c.stream(ctx, appPath(name, "logs"), opts.headers())
}

// ObjectStore uploads r as the object key ("" lets the rack choose one).
func (c *Client) ObjectStore(ctx context.Context, app, key string, r io.Reader) (*Object, error) {
	res, err := c.send(ctx, http.MethodPost, appPath(app)+"/objects/"+key, r)
	if err != nil {
		return nil, err
	}
	var o Object
	return &o, decode(res, &o)
}

func (c *Client) ObjectFetch(ctx context.Context, app, key string) (io.ReadCloser, error) {
	res, err := c.do(ctx, http.MethodGet, appPath(app)+"/objects/"+key, nil)
	if err != nil {
		return nil, err
	}
	return res.Body, nil
}

func (c *Client) BuildCreate(ctx context.Context, app, sourceURL string, opts BuildCreateOptions) (*Build, error) {
	form := url.Values{"url": {sourceURL}}
	set := func(k, v string) {
		if v != "" {
			form.Set(k, v)
		}
	}
	set("description", opts.Description)
	set("git-sha", opts.GitSha)
	set("manifest", opts.Manifest)
	set("build-args", strings.Join(opts.BuildArgs, ","))
	if opts.NoCache {
		form.Set("no-cache", "true")
	}
	var b Build
	return &b, c.call(ctx, http.MethodPost, appPath(app, "builds"), form, &b)
}

func (c *Client) BuildGet(ctx context.Context, app, id string) (*Build, error) {
	var b Build
	return &b, c.call(ctx, http.MethodGet, appPath(app, "builds", id), nil, &b)
}

func (c *Client) BuildList(ctx context.Context, app string, limit int) ([]Build, error) {
	var bs []Build
	return bs, c.call(ctx, http.MethodGet, appPath(app, "builds")+limitQuery(limit), nil, &bs)
}

func (c *Client) BuildLogs(ctx context.Context, app, id string, opts LogsOptions) (io.ReadCloser, error) {
	return c.stream(ctx, appPath(app, "builds", id, "logs"), opts.headers())
}

func (c *Client) BuildExport(ctx context.Context, app, id string, w io.Writer) error {
	res, err := c.do(ctx, http.MethodGet, appPath(app, "builds", id+".tgz"), nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if _, err := io.Copy(w, res.Body); err != nil {
		return fmt.Errorf("downloading build %s: %w", id, err)
	}
	return nil
}

func (c *Client) BuildImport(ctx context.Context, app string, r io.Reader) (*Build, error) {
	res, err := c.send(ctx, http.MethodPost, appPath(app, "builds", "import"), r)
	if err != nil {
		return nil, err
	}
	var b Build
	return &b, decode(res, &b)
}

func (c *Client) ReleaseCreate(ctx context.Context, app string, opts ReleaseCreateOptions) (*Release, error) {
	form := url.Values{}
	for k, v := range map[string]*string{"build": opts.Build, "env": opts.Env, "description": opts.Description, "parent-release": opts.ParentRelease} {
		if v != nil {
			form.Set(k, *v)
		}
	}
	var r Release
	return &r, c.call(ctx, http.MethodPost, appPath(app, "releases"), form, &r)
}

func (c *Client) ReleaseGet(ctx context.Context, app, id string) (*Release, error) {
	var r Release
	return &r, c.call(ctx, http.MethodGet, appPath(app, "releases", id), nil, &r)
}

func (c *Client) ReleaseList(ctx context.Context, app string, limit int) ([]Release, error) {
	var rs []Release
	return rs, c.call(ctx, http.MethodGet, appPath(app, "releases")+limitQuery(limit), nil, &rs)
}

func (c *Client) ReleasePromote(ctx context.Context, app, id string, opts ReleasePromoteOptions) error {
	form := url.Values{"force": {strconv.FormatBool(opts.Force)}}
	if opts.Timeout > 0 {
		form.Set("timeout", strconv.Itoa(opts.Timeout))
	}
	return c.call(ctx, http.MethodPost, appPath(app, "releases", id, "promote"), form, nil)
}

func (c *Client) ProcessList(ctx context.Context, app string, opts ProcessListOptions) ([]Process, error) {
	q := url.Values{}
	if opts.Release != "" {
		q.Set("release", opts.Release)
	}
	if opts.Service != "" {
		q.Set("service", opts.Service)
	}
	path := appPath(app, "processes")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var ps []Process
	return ps, c.call(ctx, http.MethodGet, path, nil, &ps)
}

func (c *Client) ProcessGet(ctx context.Context, app, pid string) (*Process, error) {
	var p Process
	return &p, c.call(ctx, http.MethodGet, appPath(app, "processes", pid), nil, &p)
}

func (c *Client) ProcessStop(ctx context.Context, app, pid string) error {
	return c.call(ctx, http.MethodDelete, appPath(app, "processes", pid), nil, nil)
}

func (c *Client) ServiceList(ctx context.Context, app string) ([]Service, error) {
	var ss []Service
	return ss, c.call(ctx, http.MethodGet, appPath(app, "services"), nil, &ss)
}

func (c *Client) ServiceUpdate(ctx context.Context, app, name string, opts ServiceUpdateOptions) error {
	form := url.Values{}
	for k, v := range map[string]*int{"count": opts.Count, "cpu": opts.Cpu, "memory": opts.Memory} {
		if v != nil {
			form.Set(k, strconv.Itoa(*v))
		}
	}
	return c.call(ctx, http.MethodPut, appPath(app, "services", name), form, nil)
}

func (c *Client) ServiceRestart(ctx context.Context, app, name string) error {
	return c.call(ctx, http.MethodPost, appPath(app, "services", name, "restart"), nil, nil)
}

func limitQuery(limit int) string {
	if limit <= 0 {
		return ""
	}
	return "?limit=" + strconv.Itoa(limit)
}

func (c *Client) SystemLogs(ctx context.Context, opts LogsOptions) (io.ReadCloser, error) {
	return c.stream(ctx, "/system/logs", opts.headers())
}

func (c *Client) SystemCA(ctx context.Context) ([]byte, error) {
	return c.Get(ctx, "/system/ca")
}

func (c *Client) ProcessLogs(ctx context.Context, app, pid string, opts LogsOptions) (io.ReadCloser, error) {
	return c.stream(ctx, appPath(app, "processes", pid, "logs"), opts.headers())
}

func (c *Client) ServiceLogs(ctx context.Context, app, name string, opts LogsOptions) (io.ReadCloser, error) {
	return c.stream(ctx, appPath(app, "services", name, "logs"), opts.headers())
}

// ProcessRun starts a one-off process; its options travel as headers.
func (c *Client) ProcessRun(ctx context.Context, app, service string, opts ProcessRunOptions) (*Process, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+appPath(app, "services", service, "processes"), nil)
	if err != nil {
		return nil, err
	}
	if opts.Command != "" {
		req.Header.Set("Command", opts.Command)
	}
	if opts.Release != "" {
		req.Header.Set("Release", opts.Release)
	}
	if len(opts.Environment) > 0 {
		v := url.Values{}
		for k, val := range opts.Environment {
			v.Set(k, val)
		}
		req.Header.Set("Environment", v.Encode())
	}
	if opts.Height > 0 {
		req.Header.Set("Height", strconv.Itoa(opts.Height))
	}
	if opts.Width > 0 {
		req.Header.Set("Width", strconv.Itoa(opts.Width))
	}
	res, err := c.roundTrip(req, "")
	if err != nil {
		return nil, err
	}
	var p Process
	return &p, decode(res, &p)
}

func (c *Client) BalancerList(ctx context.Context, app string) ([]Balancer, error) {
	var bs []Balancer
	return bs, c.call(ctx, http.MethodGet, appPath(app, "balancers"), nil, &bs)
}
