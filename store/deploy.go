package store

import (
	"errors"
	"sort"
	"time"

	"github.com/singlehost/convox/api"
)

// Build returns one build of app, or ErrNotFound.
func (t *Tx) Build(app, id string) (*api.Build, error) {
	var b api.Build
	if err := t.get(bucketBuilds, app+"/"+id, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// PutBuild creates or replaces a build.
func (t *Tx) PutBuild(b *api.Build) error { return t.put(bucketBuilds, b.App+"/"+b.Id, b) }

// Builds returns app's builds, newest first.
func (t *Tx) Builds(app string) ([]api.Build, error) {
	var bs []api.Build
	err := forEachPrefix(t, bucketBuilds, app+"/", func(b *api.Build) error { bs = append(bs, *b); return nil })
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].Started.After(bs[j].Started) })
	return bs, err
}

// Release returns one release of app, or ErrNotFound.
func (t *Tx) Release(app, id string) (*api.Release, error) {
	var r api.Release
	if err := t.get(bucketReleases, app+"/"+id, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// PutRelease creates or replaces a release.
func (t *Tx) PutRelease(r *api.Release) error { return t.put(bucketReleases, r.App+"/"+r.Id, r) }

// Releases returns app's releases, newest first.
func (t *Tx) Releases(app string) ([]api.Release, error) {
	var rs []api.Release
	err := forEachPrefix(t, bucketReleases, app+"/", func(r *api.Release) error { rs = append(rs, *r); return nil })
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Created.After(rs[j].Created) })
	return rs, err
}

// Scale is a service's size set with `convox scale`; it outlives promotes
// and wins over the manifest (spec §4.2.6). Zero fields are unset.
type Scale struct {
	App     string `json:"app"`
	Service string `json:"service"`
	Count   *int   `json:"count,omitempty"`
	Cpu     int    `json:"cpu,omitempty"`
	Memory  int    `json:"memory,omitempty"`
}

// Scale returns the scale of a service (zero if never set).
func (t *Tx) Scale(app, service string) (Scale, error) {
	s := Scale{App: app, Service: service}
	err := t.get(bucketScales, app+"/"+service, &s)
	if errors.Is(err, ErrNotFound) {
		return s, nil
	}
	return s, err
}

// PutScale records a service's scale.
func (t *Tx) PutScale(s Scale) error { return t.put(bucketScales, s.App+"/"+s.Service, s) }

// Promotion states.
const (
	// PromotionUpdating: new processes are being started and checked.
	PromotionUpdating = "updating"
	// PromotionRollback: the rollout failed or was cancelled; the previous
	// release is being restored.
	PromotionRollback = "rollback"
	// PromotionDone: the rollout finished, one way or the other.
	PromotionDone = "done"
)

// Promotion is the record of an app's latest rollout: it is what a restarted
// daemon reads to finish or undo a rollout that a crash interrupted.
type Promotion struct {
	ID       string    `json:"id"` // labels the processes this rollout starts
	App      string    `json:"app"`
	Release  string    `json:"release"`  // being rolled out
	Previous string    `json:"previous"` // active before; "" for the first
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"` // why it was rolled back
	Started  time.Time `json:"started"`
	Deadline time.Time `json:"deadline"`
	// Restart marks a rollout of the same release that replaces every
	// process (convox restart, scale of cpu/memory).
	Restart bool `json:"restart,omitempty"`
	// Service limits a restart or scale to one service; "" means all.
	Service string `json:"service,omitempty"`
	// Scale marks a rollout of the same release that only changes
	// Service's count (convox scale --count); CountBefore is the count to
	// restore if it fails (nil: the manifest's).
	Scale       bool `json:"scale,omitempty"`
	CountBefore *int `json:"count_before,omitempty"`
}

// Promotion returns app's latest rollout, or ErrNotFound.
func (t *Tx) Promotion(app string) (*Promotion, error) {
	var p Promotion
	if err := t.get(bucketPromotions, app, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// PutPromotion records app's rollout.
func (t *Tx) PutPromotion(p *Promotion) error { return t.put(bucketPromotions, p.App, p) }
