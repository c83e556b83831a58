package runbooks

import (
	"strings"

	"github.com/drflow/drflow/internal/config"
)

// Catalog answers which names the configuration defines, so that Validate can check the
// datasets, locations and approver groups a runbook writes literally.
type Catalog interface {
	HasDataset(name string) bool
	HasLocation(name string) bool
	HasApproverGroup(name string) bool
}

// ConfigCatalog is the Catalog of a loaded configuration.
func ConfigCatalog(cfg *config.Config) Catalog { return configCatalog{cfg} }

type configCatalog struct{ cfg *config.Config }

func (c configCatalog) HasDataset(name string) bool {
	_, ok := c.cfg.Dataset(name)
	return ok
}

func (c configCatalog) HasLocation(name string) bool {
	_, ok := c.cfg.Location(name)
	return ok
}

func (c configCatalog) HasApproverGroup(name string) bool {
	_, ok := c.cfg.ApproverGroup(name)
	return ok
}

// Validate checks a runbook: its structure, its actions and their arguments, its references
// and, when cat is not nil, the dataset, location and approver group names it writes against
// the configuration. Every problem is reported at once, one *config.FieldError each, joined;
// a problem carries the line of its step or parameter when the runbook has lines (Parse sets
// them, and they survive JSON). It is pure and deterministic, so workflows may call it.
func Validate(rb Runbook, cat Catalog) error {
	c := newChecker(cat, modelLines(rb))
	c.runbook(rb)
	return joinErrors(c.errs, c.more)
}

// modelLines records the lines a runbook carries, for runbooks that were not just parsed.
func modelLines(rb Runbook) map[string]int {
	lines := map[string]int{}
	for i, p := range rb.Params {
		if p.Line > 0 {
			lines[itemPath("params", i, p.Name)] = p.Line
		}
	}
	stepLines(lines, rb.Steps, "steps", 0)
	return lines
}

func stepLines(lines map[string]int, steps []Step, path string, depth int) {
	for i, s := range steps {
		p := itemPath(path, i, s.ID)
		if s.Line > 0 {
			lines[p] = s.Line
		}
		if c := s.Compensate; c != nil && c.Line > 0 {
			lines[fieldPath(p, "compensate")] = c.Line
		}
		if depth < MaxDepth {
			stepLines(lines, s.Parallel, fieldPath(p, "parallel"), depth+1)
		}
	}
}

// checker holds what the checks of one runbook share.
type checker struct {
	problems
	cat    Catalog
	params map[string]Param    // by name, the first of each name
	steps  map[string]stepInfo // by ID, the first of each ID
	ids    []string            // every valid step ID, in order, for suggestions
}

// stepInfo is what a reference to a step needs to know about it.
type stepInfo struct {
	path         string
	step         Step
	compensation bool
}

func newChecker(cat Catalog, lines map[string]int) *checker {
	return &checker{
		problems: problems{lines: lines},
		cat:      cat,
		params:   map[string]Param{},
		steps:    map[string]stepInfo{},
	}
}

func (c *checker) runbook(rb Runbook) {
	if msg := nameProblem(rb.Name); msg != "" {
		c.addf("name", "%s", msg)
	}
	c.checkParams(rb.Params)
	if countSteps(rb.Steps, 0) > MaxSteps {
		// The checks below are quadratic in the steps at worst; no runbook comes near this.
		c.addf("steps", "a runbook has at most %d steps (branches and compensations included)", MaxSteps)
		return
	}
	c.collectSteps(rb.Steps, "steps", 0)
	if len(rb.Steps) == 0 {
		c.addf("steps", "a runbook needs at least one step")
	}
	visible := scope{}
	for i, s := range rb.Steps {
		c.step(s, itemPath("steps", i, s.ID), visible, 0)
		visible = visible.with(completed(s, 0)...)
	}
}

func (c *checker) checkParams(params []Param) {
	for i, p := range params {
		path := itemPath("params", i, p.Name)
		np := fieldPath(path, "name")
		if msg := nameProblem(p.Name); msg != "" {
			c.addf(np, "%s", msg)
		} else if _, dup := c.params[p.Name]; dup {
			c.addf(np, "another parameter is already called %q; names must be unique", p.Name)
		} else {
			c.params[p.Name] = p
		}
		tp := fieldPath(path, "type")
		switch {
		case p.Type == "":
			c.addf(tp, "is required (one of %s)", valueTypeList())
		case !p.Type.Valid():
			c.addf(tp, "unknown type %s (one of %s)", quoteTrunc(string(p.Type)), valueTypeList())
		case p.Default != nil:
			c.checkDefault(p.Type, *p.Default, fieldPath(path, "default"))
		}
	}
}

// checkDefault checks a parameter's default, which is used as written: a reference in it
// would never be resolved.
func (c *checker) checkDefault(t ValueType, v Value, path string) {
	texts := v.List
	if !v.IsList {
		texts = []string{v.Scalar}
	}
	for _, s := range texts {
		if strings.Contains(s, "${") {
			c.addf(path, "a default is used as written and cannot hold references (%s)", quoteTrunc(s))
			return
		}
	}
	if msg := valueProblem(t, v); msg != "" {
		c.addf(path, "%s", msg)
		return
	}
	if !v.IsList {
		c.known(t, v.Scalar, path)
	}
}

// known checks a literal dataset or location name against the catalog.
func (c *checker) known(t ValueType, name, path string) {
	if c.cat == nil {
		return
	}
	if t == TypeDataset && !c.cat.HasDataset(name) {
		c.addf(path, "unknown dataset %s (not in the configuration)", quoteTrunc(name))
	}
	if t == TypeLocation && !c.cat.HasLocation(name) {
		c.addf(path, "unknown location %s (not in the configuration)", quoteTrunc(name))
	}
}

// collectSteps registers every step ID, compensations and parallel branches included, before
// the steps are checked, so that a reference to a later step can say so.
func (c *checker) collectSteps(steps []Step, path string, depth int) {
	for i, s := range steps {
		p := itemPath(path, i, s.ID)
		c.register(s, p, false)
		if s.Compensate != nil {
			c.register(*s.Compensate, fieldPath(p, "compensate"), true)
		}
		if depth < MaxDepth {
			c.collectSteps(s.Parallel, fieldPath(p, "parallel"), depth+1)
		}
	}
}

func (c *checker) register(s Step, path string, compensation bool) {
	ip := fieldPath(path, "id")
	if msg := nameProblem(s.ID); msg != "" {
		c.addf(ip, "%s", msg)
		return
	}
	if first, dup := c.steps[s.ID]; dup {
		c.addf(ip, "step ID %q is already used by %s; step IDs are unique in a runbook, compensations included", s.ID, first.path)
		return
	}
	c.steps[s.ID] = stepInfo{path: path, step: s, compensation: compensation}
	c.ids = append(c.ids, s.ID)
}

// scope is the set of step IDs whose outputs a step may read: those that completed before it
// starts.
type scope map[string]bool

func (s scope) with(ids ...string) scope {
	out := make(scope, len(s)+len(ids))
	for id := range s {
		out[id] = true
	}
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// countSteps counts steps, branches and compensations included, stopping past MaxSteps.
func countSteps(steps []Step, depth int) int {
	n := 0
	for _, s := range steps {
		if n++; s.Compensate != nil {
			n++
		}
		if depth < MaxDepth {
			n += countSteps(s.Parallel, depth+1)
		}
		if n > MaxSteps {
			break
		}
	}
	return n
}

// completed lists the IDs of a step and of everything in it that has completed when it has.
func completed(s Step, depth int) []string {
	ids := []string{s.ID}
	if depth < MaxDepth {
		for _, b := range s.Parallel {
			ids = append(ids, completed(b, depth+1)...)
		}
	}
	return ids
}
