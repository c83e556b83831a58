package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/drflow/drflow/providers"
)

const (
	metaVersion = 1
	// maxMetaSize bounds what readMeta loads; real sidecars are a few hundred bytes.
	maxMetaSize = 64 << 10
)

// metadata is an object's sidecar. The zero value means "no sidecar".
type metadata struct {
	LegalHold   bool
	Retention   providers.Retention // zero Until: none
	ContentType string
}

func (m metadata) empty() bool {
	return !m.LegalHold && m.Retention.Until.IsZero() && m.ContentType == ""
}

func (m metadata) equal(o metadata) bool {
	return m.LegalHold == o.LegalHold && m.ContentType == o.ContentType &&
		m.Retention.Mode == o.Retention.Mode && m.Retention.Until.Equal(o.Retention.Until)
}

func (m metadata) withRetention(r providers.Retention) metadata {
	if r.Until.IsZero() {
		m.Retention = providers.Retention{}
	} else {
		m.Retention = providers.Retention{Mode: r.Mode, Until: r.Until.UTC()}
	}
	return m
}

// checkUnprotected fails with ErrImmutable if m forbids deleting or overwriting the object at
// now.
func (m metadata) checkUnprotected(now time.Time) error {
	if m.LegalHold {
		return fmt.Errorf("%w: under legal hold", providers.ErrImmutable)
	}
	if m.Retention.Active(now) {
		return fmt.Errorf("%w: %s retention until %s", providers.ErrImmutable, m.Retention.Mode, m.Retention.Until.Format(time.RFC3339Nano))
	}
	return nil
}

// decideRetention returns the retention that replaces cur when a caller asks for next at now.
// An active compliance retention may only be extended (in compliance mode); an active
// governance retention may be changed in any way; a zero Until removes the retention.
func decideRetention(cur, next providers.Retention, now time.Time) (providers.Retention, error) {
	if err := next.Validate(); err != nil {
		return cur, err
	}
	if next.Until.IsZero() {
		next = providers.Retention{}
	}
	if cur.Active(now) && cur.Mode == providers.Compliance {
		until := cur.Until.Format(time.RFC3339Nano)
		switch {
		case next.Until.IsZero():
			return cur, fmt.Errorf("%w: compliance retention until %s cannot be removed", providers.ErrImmutable, until)
		case next.Mode != providers.Compliance:
			return cur, fmt.Errorf("%w: compliance retention until %s cannot become %s", providers.ErrImmutable, until, next.Mode)
		case next.Until.Before(cur.Until):
			return cur, fmt.Errorf("%w: compliance retention until %s cannot be shortened to %s",
				providers.ErrImmutable, until, next.Until.Format(time.RFC3339Nano))
		}
	}
	if !next.Until.IsZero() && !next.Until.After(now) {
		// As on S3, GCS and Azure: a retention that protects nothing is a caller's mistake.
		return cur, fmt.Errorf("%w: retention until %s is not in the future", providers.ErrInvalidArgument, next.Until.Format(time.RFC3339Nano))
	}
	return next, nil
}

// metaFile is the sidecar's JSON form. Unknown fields and versions are refused, so that an
// older drflow never ignores a protection that a newer one wrote.
type metaFile struct {
	Version     int            `json:"version"`
	LegalHold   bool           `json:"legal_hold,omitempty"`
	Retention   *metaRetention `json:"retention,omitempty"`
	ContentType string         `json:"content_type,omitempty"`
}

type metaRetention struct {
	Mode  providers.RetentionMode `json:"mode"`
	Until time.Time               `json:"until"`
}

func (m metadata) marshal() ([]byte, error) {
	f := metaFile{Version: metaVersion, LegalHold: m.LegalHold, ContentType: m.ContentType}
	if !m.Retention.Until.IsZero() {
		f.Retention = &metaRetention{Mode: m.Retention.Mode, Until: m.Retention.Until.UTC()}
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func parseMeta(raw []byte) (metadata, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f metaFile
	if err := dec.Decode(&f); err != nil {
		return metadata{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return metadata{}, errors.New("trailing data after the JSON object")
	}
	if f.Version != metaVersion {
		return metadata{}, fmt.Errorf("version %d, this drflow understands %d", f.Version, metaVersion)
	}
	m := metadata{LegalHold: f.LegalHold, ContentType: f.ContentType}
	if f.Retention != nil {
		r := providers.Retention{Mode: f.Retention.Mode, Until: f.Retention.Until}
		if r.Until.IsZero() || (r.Mode != providers.Governance && r.Mode != providers.Compliance) {
			return metadata{}, fmt.Errorf("retention %+v is not well formed", r)
		}
		m.Retention = r
	}
	return m, nil
}

// readMeta reads the sidecar at path. A missing sidecar is the zero metadata.
func readMeta(path string) (m metadata, raw []byte, exists bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil, false, nil
	}
	if err != nil {
		return m, nil, false, err
	}
	defer f.Close()
	raw, err = io.ReadAll(io.LimitReader(f, maxMetaSize+1))
	if err != nil {
		return m, nil, true, err
	}
	if len(raw) > maxMetaSize {
		return m, nil, true, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorruptMetadata, path, maxMetaSize)
	}
	m, err = parseMeta(raw)
	if err != nil {
		return m, nil, true, fmt.Errorf("%w: %s: %v (repair or remove it by hand once the object's protection is known)", ErrCorruptMetadata, path, err)
	}
	return m, raw, true, nil
}
