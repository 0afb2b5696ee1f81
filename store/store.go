// Package store keeps the rack's desired state in bbolt: typed records in
// closure-scoped transactions, and a schema version checked at open. It knows
// nothing of Docker or HTTP; it persists the api nouns as JSON.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// schemaVersion is bumped whenever a stored record changes shape in a way an
// older binary would misread.
const schemaVersion = 1

var (
	bucketMeta       = []byte("meta")
	bucketApps       = []byte("apps")
	bucketBuilds     = []byte("builds")     // <app>/<id> → api.Build
	bucketReleases   = []byte("releases")   // <app>/<id> → api.Release
	bucketScales     = []byte("scales")     // <app>/<service> → Scale
	bucketPromotions = []byte("promotions") // <app> → Promotion
	keySchema        = []byte("schema")

	buckets = [][]byte{bucketMeta, bucketApps, bucketBuilds, bucketReleases, bucketScales, bucketPromotions}
)

// Errors returned by the store.
var (
	// ErrNotFound is returned when a record does not exist.
	ErrNotFound = errors.New("record not found")
	// ErrLocked is returned by Open when another process holds the
	// database: another rack is running with the same home.
	ErrLocked = errors.New("database is locked by another process")
)

// Store is the rack's database.
type Store struct {
	db *bolt.DB
}

// Open opens or creates the database at path (mode 0600). It waits at most
// lockTimeout for the file lock, so a second rack on the same home fails
// instead of hanging.
func Open(path string, lockTimeout time.Duration) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("opening %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range buckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("creating bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keySchema)
		if v == nil {
			return meta.Put(keySchema, []byte(fmt.Sprint(schemaVersion)))
		}
		if string(v) != fmt.Sprint(schemaVersion) {
			return fmt.Errorf("database schema version %s is not %d: this binary cannot read it", v, schemaVersion)
		}
		return nil
	})
}

// Close releases the database and its file lock.
func (s *Store) Close() error { return s.db.Close() }

// Tx is a transaction: read-only inside View, read-write inside Update.
type Tx struct {
	tx *bolt.Tx
}

// Update runs fn in a read-write transaction, committed if fn returns nil and
// rolled back otherwise. ctx is checked before the transaction starts; bbolt
// transactions are short and not interruptible.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(*Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

func (t *Tx) get(bucket []byte, key string, v any) error {
	data := t.tx.Bucket(bucket).Get([]byte(key))
	if data == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (t *Tx) put(bucket []byte, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s/%s: %w", bucket, key, err)
	}
	return t.tx.Bucket(bucket).Put([]byte(key), data)
}

// forEachPrefix decodes every record of bucket whose key starts with prefix.
func forEachPrefix[T any](t *Tx, bucket []byte, prefix string, fn func(*T) error) error {
	c := t.tx.Bucket(bucket).Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		var rec T
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decoding %s/%s: %w", bucket, k, err)
		}
		if err := fn(&rec); err != nil {
			return err
		}
	}
	return nil
}

// deletePrefix removes every record of bucket whose key starts with prefix.
func (t *Tx) deletePrefix(bucket []byte, prefix string) error {
	c := t.tx.Bucket(bucket).Cursor()
	p := []byte(prefix)
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Seek(p) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
