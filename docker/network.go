package docker

import (
	"context"
	"sort"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/singlehost/convox/engine"
)

// NetworkEnsure creates the bridge network name with labels unless a
// network of that name exists (whatever its labels). It is idempotent and
// safe to race: Docker 20.10 checks for duplicate names without a lock, so
// concurrent creates can all succeed; calls in this process take turns, and
// a racing process's duplicates are removed afterwards, every racer keeping
// the oldest network so that they agree.
func (r *Runtime) NetworkEnsure(ctx context.Context, name string, labels engine.Labels) error {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	nets, err := r.networksNamed(ctx, name)
	if err != nil {
		return err
	}
	if len(nets) == 0 {
		cctx, cancel := short(ctx)
		_, err := r.c.NetworkCreate(cctx, name, network.CreateOptions{Driver: "bridge", Labels: labels})
		cancel()
		// A conflict is a concurrent create of the same name: success.
		if err != nil && !cerrdefs.IsConflict(err) && !cerrdefs.IsAlreadyExists(err) {
			return wrap(err, "creating network %s", name)
		}
		if nets, err = r.networksNamed(ctx, name); err != nil {
			return err
		}
	}
	return r.dedupe(ctx, nets)
}

// networksNamed lists the networks called exactly name, oldest first. The
// engine's name filter matches substrings, hence the second look.
func (r *Runtime) networksNamed(ctx context.Context, name string) ([]network.Summary, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	all, err := r.c.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		return nil, wrap(err, "listing networks named %s", name)
	}
	var nets []network.Summary
	for _, n := range all {
		if n.Name == name {
			nets = append(nets, n)
		}
	}
	sort.Slice(nets, func(i, j int) bool {
		if !nets[i].Created.Equal(nets[j].Created) {
			return nets[i].Created.Before(nets[j].Created)
		}
		return nets[i].ID < nets[j].ID
	})
	return nets, nil
}

// dedupe removes every network of nets but the first.
func (r *Runtime) dedupe(ctx context.Context, nets []network.Summary) error {
	for i := 1; i < len(nets); i++ {
		cctx, cancel := short(ctx)
		err := r.c.NetworkRemove(cctx, nets[i].ID)
		cancel()
		if err != nil && !cerrdefs.IsNotFound(err) {
			return wrap(err, "removing duplicate network %s (%s)", nets[i].Name, shortID(nets[i].ID))
		}
	}
	return nil
}

// VolumeEnsure creates the local volume name with labels unless it exists
// (whatever its labels). Docker's own volume create is idempotent for the
// same driver; a conflict from a racing create counts as success too.
func (r *Runtime) VolumeEnsure(ctx context.Context, name string, labels engine.Labels) error {
	ictx, cancel := short(ctx)
	_, err := r.c.VolumeInspect(ictx, name)
	cancel()
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return wrap(err, "inspecting volume %s", name)
	}
	cctx, cancel := short(ctx)
	defer cancel()
	_, err = r.c.VolumeCreate(cctx, volume.CreateOptions{Name: name, Driver: "local", Labels: labels})
	if err != nil && !cerrdefs.IsConflict(err) && !cerrdefs.IsAlreadyExists(err) {
		return wrap(err, "creating volume %s", name)
	}
	return nil
}
