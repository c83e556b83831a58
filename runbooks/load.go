package runbooks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// Limits on what the loader reads. A runbook is a page or two of YAML; anything near these
// limits is a mistake or an attack, not a runbook. Aliases can repeat a large part of a
// document many times over, so the decoder also bounds what it reads with them expanded.
const (
	// MaxSize bounds a runbook file.
	MaxSize = 1 << 20
	// MaxDepth bounds how deeply parallel steps nest (parallel within parallel).
	MaxDepth = 8
	// MaxSteps bounds the steps of a runbook, branches and compensations included.
	MaxSteps = 1000
	// maxVisits bounds the nodes the decoder visits, aliases expanded.
	maxVisits = 1 << 18
	// maxText bounds the bytes of text the decoder reads, aliases expanded.
	maxText = 4 * MaxSize
)

// Load reads and checks the runbook file at path (see Parse).
func Load(path string) (Runbook, error) { return LoadWith(path, nil) }

// LoadWith reads the runbook file at path and checks it, with its dataset, location and
// approver group names against cat (nil: structure only), every problem with its line.
func LoadWith(path string, cat Catalog) (Runbook, error) {
	f, err := os.Open(path)
	if err != nil {
		return Runbook{}, fmt.Errorf("load runbook: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return Runbook{}, fmt.Errorf("load runbook %s: %w", path, err)
	}
	rb, err := ParseWith(data, cat)
	if err != nil {
		return Runbook{}, fmt.Errorf("runbook %s is invalid:\n%w", path, err)
	}
	return rb, nil
}

// Parse decodes a runbook from YAML and checks its structure with Validate (without a
// catalog: names of datasets, locations and approver groups are checked against the
// configuration by `drflow runbook validate`). Every problem is reported at once: the error
// joins one *config.FieldError per problem, each naming its line and field path.
func Parse(data []byte) (Runbook, error) { return ParseWith(data, nil) }

// ParseWith is Parse with names checked against cat as well (nil: structure only).
func ParseWith(data []byte, cat Catalog) (Runbook, error) {
	if len(data) > MaxSize {
		return Runbook{}, fmt.Errorf("runbook is larger than %d bytes; a runbook is a page or two of YAML", MaxSize)
	}
	root, err := readDocument(data)
	if err != nil {
		return Runbook{}, err
	}
	d := &decoder{problems: problems{lines: map[string]int{}}, broken: map[string]bool{}}
	rb := d.runbook(root)
	if d.tooBig {
		return Runbook{}, errors.New("read YAML: document is too large or too deeply aliased")
	}
	if d.stepCount > MaxSteps {
		return Runbook{}, fmt.Errorf("runbook has more than %d steps (branches and compensations included)", MaxSteps)
	}
	c := newChecker(cat, d.lines)
	c.runbook(rb)
	errs := d.errs
	for _, fe := range c.errs {
		if !underBroken(fe.Path, d.broken) {
			errs = append(errs, fe)
		}
	}
	if err := joinErrors(errs, d.more || c.more); err != nil {
		return Runbook{}, err
	}
	return rb, nil
}

// readDocument parses data as exactly one YAML document and returns its root node.
func readDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("runbook is empty")
		}
		return nil, fmt.Errorf("read YAML: %w", err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, fmt.Errorf("read YAML: %w", err)
	default:
		return nil, fmt.Errorf("read YAML: line %d: a second document starts here; a runbook is one document per file", next.Line)
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, errors.New("runbook is empty")
	}
	// A first decode only to let yaml.v3 refuse alias bombs before the decoder expands aliases.
	var probe any
	var typeErr *yaml.TypeError
	if err := doc.Content[0].Decode(&probe); err != nil && !errors.As(err, &typeErr) {
		return nil, fmt.Errorf("read YAML: %w", err)
	}
	return doc.Content[0], nil
}
