package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// routes lists every route of the rack API in one place (spec §2.3).
func (s *Server) routes() {
	s.handle("GET /auth", s.auth)
	s.handle("GET /system", s.systemGet)
	s.handle("GET /system/logs", s.systemLogs)
	s.handle("GET /system/ca", s.systemCA)

	s.handle("GET /apps", s.appList)
	s.handle("POST /apps", s.appCreate)
	s.handle("GET /apps/{name}", s.appGet)
	s.handle("PUT /apps/{name}", s.appUpdate)
	s.handle("DELETE /apps/{name}", s.appDelete)
	s.handle("POST /apps/{name}/cancel", s.appCancel)
	s.handle("GET /apps/{name}/budget", s.appBudget)
	s.handle("GET /apps/{name}/logs", s.appLogs)

	s.handle("POST /apps/{app}/objects/{key...}", s.objectStore)
	s.handle("GET /apps/{app}/objects/{key...}", s.objectFetch)

	s.handle("POST /apps/{app}/builds", s.buildCreate)
	s.handle("GET /apps/{app}/builds", s.buildList)
	s.handle("POST /apps/{app}/builds/import", s.buildImport)
	s.handle("GET /apps/{app}/builds/{id}", s.buildGet) // also {id}.tgz: the export
	s.handle("GET /apps/{app}/builds/{id}/logs", s.buildLogs)

	s.handle("GET /apps/{app}/releases", s.releaseList)
	s.handle("POST /apps/{app}/releases", s.releaseCreate)
	s.handle("GET /apps/{app}/releases/{id}", s.releaseGet)
	s.handle("POST /apps/{app}/releases/{id}/promote", s.releasePromote)

	s.handle("GET /apps/{app}/processes", s.processList)
	s.handle("GET /apps/{app}/processes/{pid}", s.processGet)
	s.handle("DELETE /apps/{app}/processes/{pid}", s.processStop)
	s.handle("GET /apps/{app}/processes/{pid}/exec", s.processExec)
	s.handle("GET /apps/{app}/processes/{pid}/logs", s.processLogs)
	s.handle("POST /apps/{app}/services/{service}/processes", s.processRun)

	s.handle("GET /apps/{app}/services", s.serviceList)
	s.handle("PUT /apps/{app}/services/{name}", s.serviceUpdate)
	s.handle("POST /apps/{app}/services/{name}/restart", s.serviceRestart)
	s.handle("GET /apps/{app}/services/{name}/logs", s.serviceLogs)

	s.handle("GET /apps/{app}/balancers", s.balancerList)
}

func (s *Server) auth(w http.ResponseWriter, r *http.Request) error {
	return writeOK(w)
}

func (s *Server) systemGet(w http.ResponseWriter, r *http.Request) error {
	sys, err := s.rack.SystemGet(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, sys)
}

func (s *Server) appList(w http.ResponseWriter, r *http.Request) error {
	apps, err := s.rack.AppList(r.Context())
	if err != nil {
		return err
	}
	if apps == nil {
		apps = []App{}
	}
	return writeJSON(w, apps)
}

func (s *Server) appCreate(w http.ResponseWriter, r *http.Request) error {
	app, err := s.rack.AppCreate(r.Context(), r.FormValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, app)
}

func (s *Server) appGet(w http.ResponseWriter, r *http.Request) error {
	app, err := s.rack.AppGet(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, app)
}

func (s *Server) appUpdate(w http.ResponseWriter, r *http.Request) error {
	var opts AppUpdateOptions
	lock, err := formBool(r, "lock")
	if err != nil {
		return err
	}
	opts.Lock = lock
	if p := r.FormValue("parameters"); p != "" {
		// Convox sends maps url-encoded into one field (spec §2.1).
		vals, err := url.ParseQuery(p)
		if err != nil {
			return Errorf(ErrInvalid, "parameters must be url-encoded: %v", err)
		}
		opts.Parameters = map[string]string{}
		for k := range vals {
			opts.Parameters[k] = vals.Get(k)
		}
	}
	if err := s.rack.AppUpdate(r.Context(), r.PathValue("name"), opts); err != nil {
		return err
	}
	return writeOK(w)
}

func (s *Server) appDelete(w http.ResponseWriter, r *http.Request) error {
	if err := s.rack.AppDelete(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	return writeOK(w)
}

func (s *Server) appCancel(w http.ResponseWriter, r *http.Request) error {
	if err := s.rack.AppCancel(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	return writeOK(w)
}

func (s *Server) appBudget(w http.ResponseWriter, r *http.Request) error {
	b, err := s.rack.AppBudget(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, b)
}

func (s *Server) appLogs(w http.ResponseWriter, r *http.Request) error {
	opts, err := logsOptions(r)
	if err != nil {
		return err
	}
	return serveStream(w, r, func(ctx context.Context) (io.ReadCloser, error) {
		return s.rack.AppLogs(ctx, r.PathValue("name"), opts)
	})
}

func (s *Server) objectStore(w http.ResponseWriter, r *http.Request) error {
	o, err := s.rack.ObjectStore(r.Context(), r.PathValue("app"), r.PathValue("key"), r.Body)
	if err != nil {
		return err
	}
	return writeJSON(w, o)
}

func (s *Server) objectFetch(w http.ResponseWriter, r *http.Request) error {
	rc, err := s.rack.ObjectFetch(r.Context(), r.PathValue("app"), r.PathValue("key"))
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	_, err = io.Copy(w, rc)
	return err
}

func (s *Server) buildCreate(w http.ResponseWriter, r *http.Request) error {
	noCache, err := formBool(r, "no-cache")
	if err != nil {
		return err
	}
	opts := BuildCreateOptions{
		Description: r.FormValue("description"),
		GitSha:      r.FormValue("git-sha"),
		Manifest:    r.FormValue("manifest"),
		NoCache:     noCache != nil && *noCache,
	}
	if a := r.FormValue("build-args"); a != "" {
		opts.BuildArgs = strings.Split(a, ",")
	}
	b, err := s.rack.BuildCreate(r.Context(), r.PathValue("app"), r.FormValue("url"), opts)
	if err != nil {
		return err
	}
	return writeJSON(w, b)
}

func (s *Server) buildList(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	bs, err := s.rack.BuildList(r.Context(), r.PathValue("app"), limit)
	if err != nil {
		return err
	}
	if bs == nil {
		bs = []Build{}
	}
	return writeJSON(w, bs)
}

func (s *Server) buildGet(w http.ResponseWriter, r *http.Request) error {
	app, id := r.PathValue("app"), r.PathValue("id")
	if id, ok := strings.CutSuffix(id, ".tgz"); ok {
		w.Header().Set("Content-Type", "application/octet-stream")
		return s.rack.BuildExport(r.Context(), app, id, w)
	}
	b, err := s.rack.BuildGet(r.Context(), app, id)
	if err != nil {
		return err
	}
	return writeJSON(w, b)
}

func (s *Server) buildImport(w http.ResponseWriter, r *http.Request) error {
	b, err := s.rack.BuildImport(r.Context(), r.PathValue("app"), r.Body)
	if err != nil {
		return err
	}
	return writeJSON(w, b)
}

func (s *Server) buildLogs(w http.ResponseWriter, r *http.Request) error {
	opts, err := logsOptions(r)
	if err != nil {
		return err
	}
	return serveStream(w, r, func(ctx context.Context) (io.ReadCloser, error) {
		return s.rack.BuildLogs(ctx, r.PathValue("app"), r.PathValue("id"), opts)
	})
}

func (s *Server) releaseList(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	rs, err := s.rack.ReleaseList(r.Context(), r.PathValue("app"), limit)
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []Release{}
	}
	return writeJSON(w, rs)
}

func (s *Server) releaseCreate(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return Errorf(ErrInvalid, "invalid form: %v", err)
	}
	// A field that is absent is inherited; one that is present, even
	// empty, is set (an empty env is a valid env).
	field := func(name string) *string {
		if vs, ok := r.Form[name]; ok && len(vs) > 0 {
			return &vs[0]
		}
		return nil
	}
	rel, err := s.rack.ReleaseCreate(r.Context(), r.PathValue("app"), ReleaseCreateOptions{
		Build:         field("build"),
		Env:           field("env"),
		Description:   field("description"),
		ParentRelease: field("parent-release"),
	})
	if err != nil {
		return err
	}
	return writeJSON(w, rel)
}

func (s *Server) releaseGet(w http.ResponseWriter, r *http.Request) error {
	rel, err := s.rack.ReleaseGet(r.Context(), r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, rel)
}

func (s *Server) releasePromote(w http.ResponseWriter, r *http.Request) error {
	force, err := formBool(r, "force")
	if err != nil {
		return err
	}
	opts := ReleasePromoteOptions{Force: force != nil && *force}
	if opts.Timeout, err = formInt(r, "timeout"); err != nil {
		return err
	}
	if err := s.rack.ReleasePromote(r.Context(), r.PathValue("app"), r.PathValue("id"), opts); err != nil {
		return err
	}
	return writeOK(w)
}

func (s *Server) processList(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ps, err := s.rack.ProcessList(r.Context(), r.PathValue("app"), ProcessListOptions{Release: q.Get("release"), Service: q.Get("service")})
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []Process{}
	}
	return writeJSON(w, ps)
}

func (s *Server) processGet(w http.ResponseWriter, r *http.Request) error {
	p, err := s.rack.ProcessGet(r.Context(), r.PathValue("app"), r.PathValue("pid"))
	if err != nil {
		return err
	}
	return writeJSON(w, p)
}

func (s *Server) processStop(w http.ResponseWriter, r *http.Request) error {
	if err := s.rack.ProcessStop(r.Context(), r.PathValue("app"), r.PathValue("pid")); err != nil {
		return err
	}
	return writeOK(w)
}

func (s *Server) serviceList(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.rack.ServiceList(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	if ss == nil {
		ss = []Service{}
	}
	return writeJSON(w, ss)
}

func (s *Server) serviceUpdate(w http.ResponseWriter, r *http.Request) error {
	var opts ServiceUpdateOptions
	for _, f := range []struct {
		name string
		dst  **int
	}{{"count", &opts.Count}, {"cpu", &opts.Cpu}, {"memory", &opts.Memory}} {
		if r.FormValue(f.name) == "" {
			continue
		}
		n, err := formInt(r, f.name)
		if err != nil {
			return err
		}
		*f.dst = &n
	}
	if err := s.rack.ServiceUpdate(r.Context(), r.PathValue("app"), r.PathValue("name"), opts); err != nil {
		return err
	}
	return writeOK(w)
}

func (s *Server) serviceRestart(w http.ResponseWriter, r *http.Request) error {
	if err := s.rack.ServiceRestart(r.Context(), r.PathValue("app"), r.PathValue("name")); err != nil {
		return err
	}
	return writeOK(w)
}

// queryLimit reads the list routes' limit (spec §2.6: default 10).
func queryLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 10, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, Errorf(ErrInvalid, "limit must be a positive number, got %q", v)
	}
	return n, nil
}

func (s *Server) systemLogs(w http.ResponseWriter, r *http.Request) error {
	opts, err := logsOptions(r)
	if err != nil {
		return err
	}
	return serveStream(w, r, func(ctx context.Context) (io.ReadCloser, error) {
		return s.rack.SystemLogs(ctx, opts)
	})
}

func (s *Server) systemCA(w http.ResponseWriter, r *http.Request) error {
	pem, err := s.rack.SystemCA(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, err = w.Write(pem)
	return err
}

func (s *Server) processLogs(w http.ResponseWriter, r *http.Request) error {
	opts, err := logsOptions(r)
	if err != nil {
		return err
	}
	return serveStream(w, r, func(ctx context.Context) (io.ReadCloser, error) {
		return s.rack.ProcessLogs(ctx, r.PathValue("app"), r.PathValue("pid"), opts)
	})
}

func (s *Server) serviceLogs(w http.ResponseWriter, r *http.Request) error {
	opts, err := logsOptions(r)
	if err != nil {
		return err
	}
	return serveStream(w, r, func(ctx context.Context) (io.ReadCloser, error) {
		return s.rack.ServiceLogs(ctx, r.PathValue("app"), r.PathValue("name"), opts)
	})
}

func (s *Server) processRun(w http.ResponseWriter, r *http.Request) error {
	h := r.Header
	opts := ProcessRunOptions{Command: h.Get("Command"), Release: h.Get("Release")}
	if env := h.Get("Environment"); env != "" {
		vals, err := url.ParseQuery(env)
		if err != nil {
			return Errorf(ErrInvalid, "Environment must be url-encoded: %v", err)
		}
		opts.Environment = map[string]string{}
		for k := range vals {
			opts.Environment[k] = vals.Get(k)
		}
	}
	for _, n := range []struct {
		name string
		dst  *int
	}{{"Height", &opts.Height}, {"Width", &opts.Width}} {
		if v := h.Get(n.name); v != "" {
			x, err := strconv.Atoi(v)
			if err != nil {
				return Errorf(ErrInvalid, "%s must be a number, got %q", n.name, v)
			}
			*n.dst = x
		}
	}
	p, err := s.rack.ProcessRun(r.Context(), r.PathValue("app"), r.PathValue("service"), opts)
	if err != nil {
		return err
	}
	return writeJSON(w, p)
}

func (s *Server) balancerList(w http.ResponseWriter, r *http.Request) error {
	bs, err := s.rack.BalancerList(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	if bs == nil {
		bs = []Balancer{}
	}
	return writeJSON(w, bs)
}
