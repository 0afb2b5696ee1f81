package store

import (
	"encoding/json"
	"fmt"

	"github.com/singlehost/convox/api"
)

// App returns the app called name, or ErrNotFound.
func (t *Tx) App(name string) (*api.App, error) {
	var a api.App
	if err := t.get(bucketApps, name, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// PutApp creates or replaces an app record.
func (t *Tx) PutApp(a *api.App) error {
	return t.put(bucketApps, a.Name, a)
}

// DeleteApp removes an app and every record that belongs to it; deleting a
// missing app is not an error.
func (t *Tx) DeleteApp(name string) error {
	for _, b := range [][]byte{bucketBuilds, bucketReleases, bucketScales} {
		if err := t.deletePrefix(b, name+"/"); err != nil {
			return err
		}
	}
	if err := t.tx.Bucket(bucketPromotions).Delete([]byte(name)); err != nil {
		return err
	}
	return t.tx.Bucket(bucketApps).Delete([]byte(name))
}

// Apps returns every app, sorted by name (bbolt keeps keys sorted).
func (t *Tx) Apps() ([]api.App, error) {
	var apps []api.App
	err := t.tx.Bucket(bucketApps).ForEach(func(k, v []byte) error {
		var a api.App
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("decoding apps/%s: %w", k, err)
		}
		apps = append(apps, a)
		return nil
	})
	return apps, err
}
