package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// tempGrace is how old an unlocked temp file must be before Sweep removes it. Writers lock
// their temp files right after creating them; the grace covers that instant.
const tempGrace = time.Minute

// Prefixes of the temp files that createTemp makes; Sweep touches nothing else in tmp/.
const (
	tempPut    = "put-"
	tempMeta   = "meta-"
	tempMarker = "marker-"
)

// createTemp creates a temp file in tmp/ and locks it, telling Sweep that its writer is alive.
func (s *Store) createTemp(prefix string) (*os.File, error) {
	f, err := os.CreateTemp(s.tmp, prefix+"*")
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		_ = os.Remove(f.Name())
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// writeTempAndPlace durably writes a small file (read-only) at dst in dir.
func (s *Store) writeTempAndPlace(prefix string, data []byte, dst, dir string, exclusive bool) error {
	f, err := s.createTemp(prefix)
	if err != nil {
		return err
	}
	defer f.Close()
	placed := false
	defer func() {
		if !placed || exclusive {
			_ = os.Remove(f.Name()) // Sweep removes it if this fails
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(0o444); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := s.place(f.Name(), dst, dir, exclusive); err != nil {
		return err
	}
	placed = true
	return nil
}

// place moves the complete file src to dst in dir: rename(2), which replaces dst atomically,
// or link(2) if exclusive, which fails with EEXIST if dst exists. It creates dir if needed
// and again if a concurrent Delete removes it before the rename.
func (s *Store) place(src, dst, dir string, exclusive bool) error {
	for attempt := 1; ; attempt++ {
		var err error
		if exclusive {
			err = os.Link(src, dst)
		} else {
			err = os.Rename(src, dst)
		}
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == dirAttempts {
			return err
		}
		if err := s.mkdirs(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
}

// mkdirs creates dir and its missing parents below objects/, syncing each parent whose
// entries it changed so that the new path survives a crash.
func (s *Store) mkdirs(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrNotExist) && len(dir) > len(s.objects) {
		if err := s.mkdirs(filepath.Dir(dir)); err != nil {
			return err
		}
		err = os.Mkdir(dir, 0o700) // ENOENT again means a Delete raced; place retries
	}
	switch {
	case err == nil:
		return syncDir(filepath.Dir(dir))
	case errors.Is(err, fs.ErrExist):
		return nil
	}
	return err
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) {
		return nil // the file system cannot sync directories; its renames are all we get
	}
	return err
}

// Sweep removes temp files that crashed writers left behind: those older than a minute
// whose lock nobody holds. Open runs it; a long-running process may run it from time to time.
func (s *Store) Sweep(ctx context.Context) error {
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return fmt.Errorf("local sweep %s: %w", s.tmp, translateError(err))
	}
	var errs []error
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.Type().IsRegular() || !isTempName(e.Name()) {
			continue
		}
		path := filepath.Join(s.tmp, e.Name())
		if err := removeAbandoned(path); err != nil {
			errs = append(errs, fmt.Errorf("local sweep %s: %w", path, translateError(err)))
		}
	}
	return errors.Join(errs...)
}

func removeAbandoned(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // its writer published or removed it
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if time.Since(fi.ModTime()) < tempGrace {
		return nil
	}
	locked, err := tryLockFile(f)
	if err != nil || !locked {
		return err // a live writer holds it
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func isTempName(name string) bool {
	return strings.HasPrefix(name, tempPut) || strings.HasPrefix(name, tempMeta) || strings.HasPrefix(name, tempMarker)
}
