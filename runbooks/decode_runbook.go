package runbooks

import "go.yaml.in/yaml/v3"

func (d *decoder) runbook(root *yaml.Node) Runbook {
	f := d.mapping(root, "", runbookFields)
	if f == nil {
		return Runbook{}
	}
	return Runbook{
		Name:        d.str(f["name"], "name"),
		Description: d.str(f["description"], "description"),
		Params:      d.params(f["params"]),
		Steps:       d.steps(f["steps"], "steps", 0),
	}
}

func (d *decoder) params(n *yaml.Node) []Param {
	var out []Param
	for i, item := range d.sequence(n, "params") {
		p := itemPath("params", i, itemName(item, "name"))
		d.lines[p] = item.Line
		f := d.mapping(item, p, paramFields)
		param := Param{
			Name:        d.str(f["name"], fieldPath(p, "name")),
			Type:        ValueType(d.str(f["type"], fieldPath(p, "type"))),
			Description: d.str(f["description"], fieldPath(p, "description")),
			Line:        item.Line,
		}
		if v, ok := d.value(f["default"], fieldPath(p, "default")); ok {
			param.Default = &v
		}
		out = append(out, param)
	}
	return out
}

// steps decodes a list of steps; depth counts the parallel steps around it.
func (d *decoder) steps(n *yaml.Node, path string, depth int) []Step {
	var out []Step
	for i, item := range d.sequence(n, path) {
		if d.stepCount++; d.stepCount > MaxSteps {
			return out
		}
		p := itemPath(path, i, itemName(item, "id"))
		d.lines[p] = item.Line
		out = append(out, d.step(item, p, depth, false))
	}
	return out
}

// step decodes one step. A kind that is written but does not decode still sets its field, so
// that the checks do not also report a step without a kind.
func (d *decoder) step(n *yaml.Node, p string, depth int, compensation bool) Step {
	f := d.mapping(n, p, stepFields)
	s := Step{ID: d.str(f["id"], fieldPath(p, "id")), Line: n.Line}
	if f["action"] != nil {
		s.Action = &Action{Name: d.str(f["action"], fieldPath(p, "action")), Args: d.args(f["args"], fieldPath(p, "args"))}
	} else if f["args"] != nil {
		d.fail(fieldPath(p, "args"), d.lines[fieldPath(p, "args")], "args belong to an action step: add action: NAME")
	}
	if f["approval"] != nil {
		s.Approval = d.approval(f["approval"], fieldPath(p, "approval"))
	}
	if f["parallel"] != nil {
		s.Parallel = d.parallel(f["parallel"], fieldPath(p, "parallel"), depth)
	}
	if f["wait"] != nil {
		s.Wait = d.wait(f["wait"], fieldPath(p, "wait"))
	}
	s.Timeout = d.duration(f["timeout"], fieldPath(p, "timeout"))
	s.Retry = d.retry(f["retry"], fieldPath(p, "retry"))
	s.ExpectError = d.str(f["expect_error"], fieldPath(p, "expect_error"))
	if c := f["compensate"]; c != nil {
		cp := fieldPath(p, "compensate")
		if compensation {
			// Not decoded: the model cannot carry it, and it would nest without bound.
			d.fail(cp, d.lines[cp], "a compensation cannot have its own compensate")
		} else {
			d.stepCount++
			comp := d.step(c, cp, depth, true)
			s.Compensate = &comp
		}
	}
	return s
}

func (d *decoder) parallel(n *yaml.Node, path string, depth int) []Step {
	if depth+1 > MaxDepth {
		d.fail(path, d.lines[path], "parallel steps nest more than %d deep", MaxDepth)
		return []Step{}
	}
	branches := d.steps(n, path, depth+1)
	if branches == nil {
		branches = []Step{} // written, even if empty or broken: the checks say so
	}
	return branches
}

// args decodes an action's arguments; names are checked against the action later.
func (d *decoder) args(n *yaml.Node, path string) map[string]Value {
	if n = d.resolve(n, path); n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "want a mapping of arguments (name: value), got %s", describe(n))
		return nil
	}
	var out map[string]Value
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name, ok := d.key(k, path, seen)
		if !ok {
			continue
		}
		p := keyPath(path, name)
		d.lines[p] = k.Line
		if val, ok := d.value(v, p); ok {
			if out == nil {
				out = map[string]Value{}
			}
			out[name] = val
		}
	}
	return out
}

func (d *decoder) approval(n *yaml.Node, p string) *Approval {
	f := d.mapping(n, p, approvalFields)
	a := &Approval{
		Group:     d.str(f["group"], fieldPath(p, "group")),
		Min:       d.integer(f["min"], fieldPath(p, "min"), 1),
		Timeout:   d.duration(f["timeout"], fieldPath(p, "timeout")),
		OnTimeout: d.str(f["on_timeout"], fieldPath(p, "on_timeout")),
		Message:   d.str(f["message"], fieldPath(p, "message")),
	}
	a.Approvers, _ = d.value(f["approvers"], fieldPath(p, "approvers"))
	return a
}

func (d *decoder) wait(n *yaml.Node, p string) *Wait {
	f := d.mapping(n, p, waitFields)
	w := &Wait{
		Duration: d.duration(f["duration"], fieldPath(p, "duration")),
		Every:    d.duration(f["every"], fieldPath(p, "every")),
	}
	if f["until"] != nil {
		up := fieldPath(p, "until")
		u := d.mapping(f["until"], up, untilFields)
		w.Until = &Action{Name: d.str(u["action"], fieldPath(up, "action")), Args: d.args(u["args"], fieldPath(up, "args"))}
	}
	return w
}

func (d *decoder) retry(n *yaml.Node, p string) *Retry {
	f := d.mapping(n, p, retryFields)
	if f == nil {
		return nil
	}
	return &Retry{
		MaxAttempts:     d.integer(f["max_attempts"], fieldPath(p, "max_attempts"), 1),
		InitialInterval: d.duration(f["initial_interval"], fieldPath(p, "initial_interval")),
		MaxInterval:     d.duration(f["max_interval"], fieldPath(p, "max_interval")),
	}
}
