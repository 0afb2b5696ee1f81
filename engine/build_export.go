package engine

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/singlehost/convox/api"
	"github.com/singlehost/convox/manifest"
	"github.com/singlehost/convox/store"
)

// BuildExport writes a build as Convox v3 does (spec §3.9): a gzip'd tar
// holding build.json and one `docker save` archive per service, named
// <service>.<build>.tar.
func (e *Engine) BuildExport(ctx context.Context, app, id string, w io.Writer) error {
	b, err := e.BuildGet(ctx, app, id)
	if err != nil {
		return err
	}
	if b.Status != api.BuildComplete {
		return api.Errorf(api.ErrInvalid, "build %s is %s, not complete", id, b.Status)
	}
	services, err := e.buildServices(b)
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	meta, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	if err := writeTarFile(tw, "build.json", int64(len(meta)), strings.NewReader(string(meta))); err != nil {
		return err
	}
	for _, s := range services {
		// A tar entry needs its size first, so each image is saved to a
		// temporary file before it is added.
		f, err := os.CreateTemp("", "convox-export-*.tar")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if err := e.runtime.ImageSave(ctx, []string{e.imageRef(app, s, id)}, f); err != nil {
			return fmt.Errorf("saving the image of %s: %w", s, err)
		}
		size, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := writeTarFile(tw, s+"."+id+".tar", size, f); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func writeTarFile(tw *tar.Writer, name string, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := io.CopyN(tw, r, size)
	return err
}

// buildServices lists the services a build made images for.
func (e *Engine) buildServices(b *api.Build) ([]string, error) {
	m, err := manifest.Load([]byte(b.Manifest), nil)
	if err != nil {
		return nil, fmt.Errorf("build %s manifest: %w", b.Id, err)
	}
	var names []string
	for _, s := range m.Services {
		names = append(names, s.Name)
	}
	return names, nil
}

// BuildImport loads an archive made by BuildExport (from any rack or app) as
// a new, complete build of app with its own release.
func (e *Engine) BuildImport(ctx context.Context, app string, r io.Reader) (*api.Build, error) {
	if _, err := e.AppGet(ctx, app); err != nil {
		return nil, err
	}
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "build archive is not gzip: %v", err)
	}
	tr := tar.NewReader(gz)
	nb := &api.Build{Id: newID("B"), App: app, Status: api.BuildComplete}
	var old *api.Build
	images := map[string]string{} // service → loaded ref
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, api.Errorf(api.ErrInvalid, "reading build archive: %v", err)
		}
		name := path.Clean(h.Name)
		switch {
		case name == "build.json":
			old = &api.Build{}
			if err := json.NewDecoder(tr).Decode(old); err != nil {
				return nil, api.Errorf(api.ErrInvalid, "build.json: %v", err)
			}
		case strings.HasSuffix(name, ".tar") && !strings.Contains(name, "/"):
			service, _, _ := strings.Cut(strings.TrimSuffix(name, ".tar"), ".")
			ref, err := e.loadImage(ctx, tr)
			if err != nil {
				return nil, fmt.Errorf("loading the image of %s: %w", service, err)
			}
			images[service] = ref
		}
	}
	if old == nil {
		return nil, api.Errorf(api.ErrInvalid, "build archive has no build.json")
	}
	nb.Description, nb.Manifest, nb.Entrypoint, nb.GitSha = old.Description, old.Manifest, old.Entrypoint, old.GitSha
	nb.Logs = objectURL(app, "build/"+nb.Id+"/logs")
	services, err := e.buildServices(nb)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "%v", err)
	}
	for _, s := range services {
		ref, ok := images[s]
		if !ok {
			return nil, api.Errorf(api.ErrInvalid, "build archive has no image for service %s", s)
		}
		if err := e.runtime.ImageTag(ctx, ref, e.imageRef(app, s, nb.Id)); err != nil {
			return nil, fmt.Errorf("tagging the image of %s: %w", s, err)
		}
	}
	nb.Started, nb.Ended = time.Now().UTC(), time.Now().UTC()
	err = e.store.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutBuild(nb); err != nil {
			return err
		}
		rel, err := createRelease(tx, app, api.ReleaseCreateOptions{Build: &nb.Id}, nb.Ended)
		if err != nil {
			return err
		}
		nb.Release = rel.Id
		return tx.PutBuild(nb)
	})
	if err != nil {
		return nil, err
	}
	e.event(app, "build", "Imported build %s (from %s): release %s", nb.Id, old.Id, nb.Release)
	return nb, nil
}

// loadImage loads one `docker save` archive and returns the image name it
// carries (the first RepoTags entry of its manifest.json).
func (e *Engine) loadImage(ctx context.Context, r io.Reader) (string, error) {
	f, err := os.CreateTemp("", "convox-import-*.tar")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	ref := ""
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", api.Errorf(api.ErrInvalid, "image archive: %v", err)
		}
		if h.Name == "manifest.json" {
			var m []struct{ RepoTags []string }
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				return "", api.Errorf(api.ErrInvalid, "image archive manifest.json: %v", err)
			}
			if len(m) > 0 && len(m[0].RepoTags) > 0 {
				ref = m[0].RepoTags[0]
			}
			break
		}
	}
	if ref == "" {
		return "", api.Errorf(api.ErrInvalid, "image archive names no image")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if err := e.runtime.ImageLoad(ctx, f); err != nil {
		return "", err
	}
	return ref, nil
}
