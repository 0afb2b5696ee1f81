package engine

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// A build's source is the gzip'd tar the CLI uploads. It is never unpacked
// to disk: files are read, and build contexts re-packed, straight from the
// archive, so a hostile archive (../ paths, symlinked directories) cannot
// write outside anything.

// sourceName validates an archive entry's name and returns it cleaned,
// relative, without a leading "./".
func sourceName(name string) (string, error) {
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if strings.HasPrefix(name, "/") || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("source archive holds a path outside the source: %q", name)
	}
	return clean, nil
}

// eachSourceEntry calls fn for every entry of the gzip'd tar r, with its
// cleaned name; fn must consume the entry before returning.
func eachSourceEntry(r io.Reader, fn func(name string, h *tar.Header, tr *tar.Reader) error) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("source archive is not gzip: %w", err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading source archive: %w", err)
		}
		name, err := sourceName(h.Name)
		if err != nil {
			return err
		}
		if h.Typeflag == tar.TypeLink {
			if h.Linkname, err = sourceName(h.Linkname); err != nil {
				return err
			}
		}
		if err := fn(name, h, tr); err != nil {
			return err
		}
	}
}

// errFound stops a scan early.
var errFound = errors.New("found")

// sourceFile returns the content of the regular file name in the archive.
func sourceFile(r io.Reader, name string) ([]byte, bool, error) {
	var data []byte
	err := eachSourceEntry(r, func(n string, h *tar.Header, tr *tar.Reader) error {
		if n != path.Clean(name) || h.Typeflag != tar.TypeReg {
			return nil
		}
		var err error
		data, err = io.ReadAll(io.LimitReader(tr, 4<<20))
		if err != nil {
			return err
		}
		return errFound
	})
	if errors.Is(err, errFound) {
		return data, true, nil
	}
	return nil, false, err
}

// buildContext writes to w an uncompressed tar of the archive's directory
// dir ("." for all of it), with names relative to dir: the build context
// Docker expects.
func buildContext(r io.Reader, dir string, w io.Writer) error {
	dir = path.Clean(dir)
	tw := tar.NewWriter(w)
	err := eachSourceEntry(r, func(name string, h *tar.Header, tr *tar.Reader) error {
		rel := name
		if dir != "." {
			var ok bool
			if rel, ok = strings.CutPrefix(name, dir+"/"); !ok {
				return nil
			}
		}
		if rel == "." || rel == "" {
			return nil
		}
		h.Name = rel
		if h.Typeflag == tar.TypeLink && dir != "." {
			target, ok := strings.CutPrefix(h.Linkname, dir+"/")
			if !ok {
				return nil // a link to a file outside this context
			}
			h.Linkname = target
		}
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
