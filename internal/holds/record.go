// Package holds is drflow's legal hold: a named, audited order that a set of restore points
// must not be deleted, pruned, shredded or overwritten on any location until it is released.
//
// # Records
//
// A hold is recorded at every location that holds a copy of the dataset, next to the data it
// protects, so that whatever acts on a location (prune, GC, shred, copy) can check it without
// Temporal or another location:
//
//	datasets/<ds>/holds/<name>/order.json             who asked, why, which points (Order)
//	datasets/<ds>/holds/<name>/points/<point>.json    the objects of one covered point here
//	datasets/<ds>/holds/<name>/points/<point>+<h>.json  more objects of it (written later)
//	datasets/<ds>/holds/<name>/release.json           who released it, why, who approved
//
// Every record is written once with a conditional create and never rewritten: a hold's
// state only grows (placed, points covered, released), so concurrent writers (a backup
// adding a point to an ongoing hold while the hold is placed elsewhere) never lose each
// other's records. A hold is active at a location while its order exists there and its
// release does not.
//
// Records are plain JSON with names, restore point IDs and object keys only: no customer
// data, no keys.
//
// # Lifecycle
//
// Place records a hold at every location of the dataset: the order, then per selected point
// the coverage record, then the provider's own legal hold on each object and on the hold's
// records wherever the store can hold (read back once, since an emulator may accept a hold
// and drop it). Propagate extends active holds to a restore point written later (a backup,
// a copy). ReleaseHold enforces the two-person rule, records the release everywhere and
// lifts a provider hold only where no other active hold covers the object. Inspect reads a
// hold back from the stores themselves. Every step is audited (audit.KindHold) and
// idempotent, so a retried activity converges.
package holds

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/providers"
)

// recordVersion is the format version of every record.
const recordVersion = 1

// maxRecordSize bounds a record read into memory. A point's record lists its objects
// (a pack per 16 MiB of data: about 64 keys per GiB), so 16 MiB is far beyond any real point.
const maxRecordSize = 16 << 20

// ErrConflict is returned when a hold of the same name exists with another order, or was
// already released.
var ErrConflict = errors.New("legal hold conflict")

// Prefix is where the hold records of dataset live in a store.
func Prefix(dataset string) string { return "datasets/" + dataset + "/holds/" }

func holdPrefix(dataset, name string) string { return Prefix(dataset) + name + "/" }
func orderKey(dataset, name string) string   { return holdPrefix(dataset, name) + "order.json" }
func releaseKey(dataset, name string) string { return holdPrefix(dataset, name) + "release.json" }
func pointsPrefix(dataset, name string) string {
	return holdPrefix(dataset, name) + "points/"
}

// Selection says which restore points a hold covers: those whose data_as_of lies in
// [From, To] (a zero bound is open), or exactly Points; with Ongoing, also every point
// created while the hold is active.
type Selection struct {
	From    time.Time `json:"from,omitzero"`
	To      time.Time `json:"to,omitzero"`
	Points  []string  `json:"points,omitempty"`
	Ongoing bool      `json:"ongoing,omitempty"`
}

// Matches reports whether a point with this data_as_of is selected (explicit IDs aside).
func (s Selection) Matches(id string, dataAsOf time.Time) bool {
	if len(s.Points) > 0 {
		return slices.Contains(s.Points, id)
	}
	if !s.From.IsZero() && dataAsOf.Before(s.From) {
		return false
	}
	if !s.To.IsZero() && dataAsOf.After(s.To) {
		return false
	}
	return true
}

// Order is what a hold was placed for.
type Order struct {
	Version     int       `json:"v"`
	Name        string    `json:"name"`
	Dataset     string    `json:"dataset"`
	Reason      string    `json:"reason"`
	RequestedBy string    `json:"requested_by"`
	Selection   Selection `json:"selection"`
	PlacedAt    time.Time `json:"placed_at"`
	// Actor is what placed it: a workflow ID, "drflow hold place".
	Actor string `json:"actor,omitempty"`
}

// Validate checks an order before anything is written.
func (o Order) Validate() error {
	var errs []error
	if err := ValidateName(o.Name); err != nil {
		errs = append(errs, err)
	}
	if o.Dataset == "" {
		errs = append(errs, errors.New("legal hold: dataset is required"))
	}
	if strings.TrimSpace(o.Reason) == "" {
		errs = append(errs, errors.New("legal hold: reason is required (the case, matter or ticket it serves)"))
	}
	if strings.TrimSpace(o.RequestedBy) == "" {
		errs = append(errs, errors.New("legal hold: requested_by is required (who asks for the hold)"))
	}
	s := o.Selection
	if len(s.Points) > 0 && (!s.From.IsZero() || !s.To.IsZero()) {
		errs = append(errs, errors.New("legal hold: select points either by --point IDs or by a --from/--to range, not both"))
	}
	if !s.From.IsZero() && !s.To.IsZero() && s.To.Before(s.From) {
		errs = append(errs, fmt.Errorf("legal hold: --to %s is before --from %s", s.To.UTC().Format(time.RFC3339), s.From.UTC().Format(time.RFC3339)))
	}
	return errors.Join(errs...)
}

// ValidateName checks a hold name: 1 to 63 lower-case letters, digits, '-', '_' and '.',
// starting with a letter or digit (it becomes part of object keys and workflow IDs).
func ValidateName(name string) error {
	if msg := config.NameProblem(name); msg != "" {
		return fmt.Errorf("legal hold: name %s", msg)
	}
	return nil
}

// Coverage is the objects of one covered restore point at one location.
type Coverage struct {
	Version  int       `json:"v"`
	Point    string    `json:"point"`
	DataAsOf time.Time `json:"data_as_of"`
	// Objects are the store keys of the point's objects there: manifest, packs, indexes,
	// wrapped keys, or its catalog entry.
	Objects   []string  `json:"objects"`
	CoveredAt time.Time `json:"covered_at"`
}

// Release is how a hold ended.
type Release struct {
	Version     int       `json:"v"`
	Reason      string    `json:"reason"`
	RequestedBy string    `json:"requested_by"`
	ApprovedBy  []string  `json:"approved_by"`
	ReleasedAt  time.Time `json:"released_at"`
	Actor       string    `json:"actor,omitempty"`
}

// Validate checks the two-person rule: someone other than the requester approved.
func (r Release) Validate() error {
	var errs []error
	if strings.TrimSpace(r.Reason) == "" {
		errs = append(errs, errors.New("legal hold release: reason is required"))
	}
	if strings.TrimSpace(r.RequestedBy) == "" {
		errs = append(errs, errors.New("legal hold release: requested_by is required"))
	}
	other := false
	for _, a := range r.ApprovedBy {
		if a != "" && a != r.RequestedBy {
			other = true
		}
	}
	if !other {
		errs = append(errs, fmt.Errorf("legal hold release: needs the approval of someone other than the requester %q", r.RequestedBy))
	}
	return errors.Join(errs...)
}

// Hold is one hold as recorded at one location.
type Hold struct {
	Order   Order
	Release *Release // nil while active
	// Points maps each covered point to its objects here (every coverage record merged).
	Points map[string][]string
	// DataAsOf of each covered point.
	DataAsOf map[string]time.Time
}

// Active reports whether the hold is in force at this location.
func (h Hold) Active() bool { return h.Release == nil }

// PointIDs lists the covered points in order.
func (h Hold) PointIDs() []string {
	ids := make([]string, 0, len(h.Points))
	for id := range h.Points {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Book reads and writes the hold records of one dataset in one store.
type Book struct {
	st      providers.Store
	dataset string
}

// Records returns the hold records of dataset in st.
func Records(st providers.Store, dataset string) *Book { return &Book{st: st, dataset: dataset} }

// Store is the store the records live in.
func (b *Book) Store() providers.Store { return b.st }

// PutOrder records a hold's order. Writing the same order again (a retried activity) is a
// no-op; another order under the same name is ErrConflict.
func (b *Book) PutOrder(ctx context.Context, o Order) error {
	o.Version = recordVersion
	if err := o.Validate(); err != nil {
		return fmt.Errorf("%w: %w", providers.ErrInvalidArgument, err)
	}
	if o.Dataset != b.dataset {
		return fmt.Errorf("%w: order for dataset %s written to the records of %s", providers.ErrInvalidArgument, o.Dataset, b.dataset)
	}
	key := orderKey(b.dataset, o.Name)
	err := b.create(ctx, key, o)
	if !errors.Is(err, providers.ErrExists) {
		return err
	}
	var have Order
	if err := b.read(ctx, key, &have); err != nil {
		return err
	}
	if !sameOrder(have, o) {
		return fmt.Errorf("%w: hold %s of dataset %s already exists at %s with another order (placed %s by %s)", ErrConflict,
			o.Name, b.dataset, b.st.Location().Name, have.PlacedAt.UTC().Format(time.RFC3339), have.RequestedBy)
	}
	return nil
}

func sameOrder(a, b Order) bool {
	return a.Name == b.Name && a.Dataset == b.Dataset && a.Reason == b.Reason && a.RequestedBy == b.RequestedBy &&
		a.Selection.From.Equal(b.Selection.From) && a.Selection.To.Equal(b.Selection.To) &&
		slices.Equal(a.Selection.Points, b.Selection.Points) && a.Selection.Ongoing == b.Selection.Ongoing
}

// Cover records that hold name covers point, with its objects at this location. Objects
// already recorded for the point are not written again; new ones go into a further record.
// It returns the key of the record written, or "" if nothing new was recorded.
func (b *Book) Cover(ctx context.Context, name, point string, dataAsOf time.Time, objects []string, now time.Time) (string, error) {
	h, err := b.Get(ctx, name)
	if err != nil {
		return "", err
	}
	if !h.Active() {
		return "", fmt.Errorf("%w: hold %s of dataset %s was released at %s", ErrConflict, name, b.dataset, b.st.Location().Name)
	}
	have := map[string]bool{}
	for _, k := range h.Points[point] {
		have[k] = true
	}
	var fresh []string
	for _, k := range objects {
		if !have[k] {
			fresh = append(fresh, k)
			have[k] = true
		}
	}
	_, known := h.Points[point]
	if known && len(fresh) == 0 {
		return "", nil
	}
	sort.Strings(fresh)
	key := pointsPrefix(b.dataset, name) + point + ".json"
	if known {
		sum := sha256.Sum256([]byte(strings.Join(fresh, "\n")))
		key = pointsPrefix(b.dataset, name) + point + "+" + hex.EncodeToString(sum[:4]) + ".json"
	}
	c := Coverage{Version: recordVersion, Point: point, DataAsOf: dataAsOf.UTC(), Objects: nonNil(fresh), CoveredAt: now.UTC()}
	if err := b.create(ctx, key, c); err != nil && !errors.Is(err, providers.ErrExists) {
		return "", err
	}
	return key, nil
}

// PutRelease records that hold name ended. The release must pass Release.Validate.
// Releasing a released hold again with the same reason is a no-op.
func (b *Book) PutRelease(ctx context.Context, name string, r Release) error {
	r.Version = recordVersion
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: %w", providers.ErrInvalidArgument, err)
	}
	if _, err := b.Get(ctx, name); err != nil {
		return err
	}
	key := releaseKey(b.dataset, name)
	err := b.create(ctx, key, r)
	if !errors.Is(err, providers.ErrExists) {
		return err
	}
	var have Release
	if err := b.read(ctx, key, &have); err != nil {
		return err
	}
	if have.Reason != r.Reason || have.RequestedBy != r.RequestedBy {
		return fmt.Errorf("%w: hold %s of dataset %s was already released at %s by %s", ErrConflict, name, b.dataset,
			have.ReleasedAt.UTC().Format(time.RFC3339), have.RequestedBy)
	}
	return nil
}

// Get reads one hold. ErrNotFound if it has no order here.
func (b *Book) Get(ctx context.Context, name string) (Hold, error) {
	if err := ValidateName(name); err != nil {
		return Hold{}, fmt.Errorf("%w: %w", providers.ErrInvalidArgument, err)
	}
	holds, err := b.list(ctx, holdPrefix(b.dataset, name))
	if err != nil {
		return Hold{}, err
	}
	if len(holds) == 0 {
		return Hold{}, fmt.Errorf("legal hold %s of dataset %s at %s: %w", name, b.dataset, b.st.Location().Name, providers.ErrNotFound)
	}
	return holds[0], nil
}

// List reads every hold of the dataset here, active and released, by name.
func (b *Book) List(ctx context.Context) ([]Hold, error) {
	return b.list(ctx, Prefix(b.dataset))
}

// RecordKeys lists the keys of every record of hold name here (order, coverage, release).
func (b *Book) RecordKeys(ctx context.Context, name string) ([]string, error) {
	var keys []string
	err := b.st.List(ctx, holdPrefix(b.dataset, name), func(oi providers.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list records of legal hold %s of dataset %s at %s: %w", name, b.dataset, b.st.Location().Name, err)
	}
	return keys, nil
}

func (b *Book) list(ctx context.Context, prefix string) ([]Hold, error) {
	base := Prefix(b.dataset)
	byName := map[string]*Hold{}
	var keys []string
	err := b.st.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list legal holds of dataset %s at %s: %w", b.dataset, b.st.Location().Name, err)
	}
	for _, key := range keys {
		name, rest, ok := strings.Cut(strings.TrimPrefix(key, base), "/")
		if !ok || ValidateName(name) != nil {
			continue // not a record of ours
		}
		h := byName[name]
		if h == nil {
			h = &Hold{Points: map[string][]string{}, DataAsOf: map[string]time.Time{}}
			byName[name] = h
		}
		if err := b.load(ctx, key, rest, h); err != nil {
			return nil, err
		}
	}
	out := make([]Hold, 0, len(byName))
	for _, h := range byName {
		if h.Order.Name == "" {
			continue // coverage without an order: an order write that has not landed yet
		}
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Order.Name < out[j].Order.Name })
	return out, nil
}

func (b *Book) load(ctx context.Context, key, rest string, h *Hold) error {
	switch {
	case rest == "order.json":
		return b.read(ctx, key, &h.Order)
	case rest == "release.json":
		var r Release
		if err := b.read(ctx, key, &r); err != nil {
			return err
		}
		h.Release = &r
	case strings.HasPrefix(rest, "points/") && strings.HasSuffix(rest, ".json"):
		var c Coverage
		if err := b.read(ctx, key, &c); err != nil {
			return err
		}
		h.Points[c.Point] = mergeKeys(h.Points[c.Point], c.Objects)
		h.DataAsOf[c.Point] = c.DataAsOf
	}
	return nil
}

func mergeKeys(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	sort.Strings(out)
	return slices.Compact(out)
}

func (b *Book) create(ctx context.Context, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	_, err = b.st.Put(ctx, key, bytes.NewReader(append(data, '\n')), providers.PutOptions{IfNotExists: true, ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("write legal hold record %s at %s: %w", key, b.st.Location().Name, err)
	}
	return nil
}

func (b *Book) read(ctx context.Context, key string, v any) error {
	rc, err := b.st.Get(ctx, key, providers.GetOptions{})
	if err != nil {
		return fmt.Errorf("read legal hold record %s at %s: %w", key, b.st.Location().Name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxRecordSize+1))
	if err != nil {
		return fmt.Errorf("read legal hold record %s at %s: %w", key, b.st.Location().Name, err)
	}
	if len(data) > maxRecordSize {
		return fmt.Errorf("legal hold record %s at %s is larger than %d bytes", key, b.st.Location().Name, maxRecordSize)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("legal hold record %s at %s: %w", key, b.st.Location().Name, err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
