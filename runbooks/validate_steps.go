package runbooks

import (
	"slices"
	"strings"
)

// step checks one step; visible holds the steps that completed before it starts.
func (c *checker) step(s Step, p string, visible scope, depth int) {
	if c.full() {
		return
	}
	c.kind(s, p)
	if s.Action != nil {
		c.action(*s.Action, fieldPath(p, "action"), fieldPath(p, "args"), visible, false)
	}
	if s.Approval != nil {
		c.approval(*s.Approval, fieldPath(p, "approval"), visible)
	}
	if s.Parallel != nil {
		c.parallel(s.Parallel, fieldPath(p, "parallel"), visible, depth)
	}
	if s.Wait != nil {
		c.wait(s, p, visible)
	}
	c.options(s, p)
	if s.Compensate != nil {
		// A compensation runs after its step completed, so it may read the step's outputs.
		c.compensation(*s.Compensate, fieldPath(p, "compensate"), visible.with(completed(s, depth)...), depth)
	}
}

func (c *checker) kind(s Step, p string) {
	var kinds []string
	if s.Action != nil {
		kinds = append(kinds, "action")
	}
	if s.Approval != nil {
		kinds = append(kinds, "approval")
	}
	if s.Parallel != nil {
		kinds = append(kinds, "parallel")
	}
	if s.Wait != nil {
		kinds = append(kinds, "wait")
	}
	switch {
	case len(kinds) == 0:
		c.addf(p, "a step needs one of action, approval, parallel or wait")
	case len(kinds) > 1:
		c.addf(p, "a step is one of action, approval, parallel or wait; this one has %s", strings.Join(kinds, " and "))
	}
}

func (c *checker) parallel(branches []Step, p string, visible scope, depth int) {
	if len(branches) == 0 {
		c.addf(p, "is empty: a parallel step needs at least one branch")
		return
	}
	if depth+1 > MaxDepth {
		c.addf(p, "parallel steps nest more than %d deep", MaxDepth)
		return
	}
	// Branches run side by side: none sees another's outputs.
	for j, b := range branches {
		c.step(b, itemPath(p, j, b.ID), visible, depth+1)
	}
}

// options checks the fields every kind of step may carry.
func (c *checker) options(s Step, p string) {
	if s.Timeout < 0 {
		c.addf(fieldPath(p, "timeout"), "must be positive")
	}
	if s.Action == nil && s.Retry != nil {
		c.addf(fieldPath(p, "retry"), "applies only to action steps")
	}
	if s.Action == nil && s.ExpectError != "" {
		c.addf(fieldPath(p, "expect_error"), "applies only to action steps")
	}
	if s.Retry != nil {
		c.retry(*s.Retry, fieldPath(p, "retry"))
	}
	if s.ExpectError != "" && !isErrorType(s.ExpectError) {
		c.addf(fieldPath(p, "expect_error"), "want an error type such as KeyRevoked, got %s", quoteTrunc(s.ExpectError))
	}
}

func (c *checker) retry(r Retry, p string) {
	if r.MaxAttempts < 0 {
		c.addf(fieldPath(p, "max_attempts"), "must be at least 1")
	}
	if r.InitialInterval < 0 {
		c.addf(fieldPath(p, "initial_interval"), "must be positive")
	}
	if r.MaxInterval < 0 {
		c.addf(fieldPath(p, "max_interval"), "must be positive")
	}
	if r.InitialInterval > 0 && r.MaxInterval > 0 && r.InitialInterval > r.MaxInterval {
		c.addf(fieldPath(p, "initial_interval"), "is longer than max_interval (%s)", r.MaxInterval.D())
	}
}

// isErrorType checks the shape of a Temporal application error type such as KeyRevoked.
func isErrorType(s string) bool {
	if len(s) > maxNameLen || !isUpper(s[0]) && !isLower(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; !isUpper(b) && !isLower(b) && !isDigit(b) && b != '_' {
			return false
		}
	}
	return true
}

func (c *checker) compensation(cs Step, p string, visible scope, depth int) {
	switch k := cs.Kind(); k {
	case "action":
	case "":
		c.addf(p, "a compensation is an action step: id, action and args")
		return
	default:
		c.addf(p, "a compensation must be an action step, not %s step", article(k))
		return
	}
	if cs.Compensate != nil {
		c.addf(fieldPath(p, "compensate"), "a compensation cannot have its own compensate")
		cs.Compensate = nil
	}
	c.step(cs, p, visible, depth)
}

func article(kind string) string {
	if strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}

// action checks an action's name and arguments. condition requires an action that can serve
// as a wait's until.
func (c *checker) action(a Action, namePath, argsPath string, visible scope, condition bool) {
	spec, ok := c.lookupAction(a.Name, namePath, condition)
	for _, name := range sortedKeys(a.Args) {
		p := keyPath(argsPath, name)
		if !ok {
			c.value(a.Args[name], p, "", visible) // still check its references
			continue
		}
		arg, known := spec.Arg(name)
		if !known {
			c.addf(p, "unknown argument %s of %s (%s)", quoteTrunc(name), spec.Name, suggest(name, argNames(spec)))
			continue
		}
		c.value(a.Args[name], p, arg.Type, visible)
	}
	if !ok {
		return
	}
	for _, arg := range spec.Args {
		if _, given := a.Args[arg.Name]; arg.Required && !given {
			c.addf(keyPath(argsPath, arg.Name), "is required by %s: %s", spec.Name, arg.Doc)
		}
	}
}

func (c *checker) lookupAction(name, path string, condition bool) (ActionSpec, bool) {
	if name == "" {
		c.addf(path, "is required: the name of an action (%s)", strings.Join(actionNames(false), ", "))
		return ActionSpec{}, false
	}
	spec, ok := LookupAction(name)
	if !ok {
		c.addf(path, "unknown action %s (%s)", quoteTrunc(name), suggest(name, actionNames(condition)))
		return ActionSpec{}, false
	}
	if condition && !spec.Condition {
		c.addf(path, "%s cannot be waited on: until takes a condition action (%s)", name, strings.Join(actionNames(true), ", "))
		return spec, false
	}
	return spec, true
}

// actionNames lists the registered actions, or only the conditions.
func actionNames(conditions bool) []string {
	var names []string
	for _, a := range Actions() {
		if a.Condition || !conditions {
			names = append(names, a.Name)
		}
	}
	return names
}

func argNames(spec ActionSpec) []string {
	names := make([]string, 0, len(spec.Args))
	for _, a := range spec.Args {
		names = append(names, a.Name)
	}
	return names
}

func (c *checker) approval(a Approval, p string, visible scope) {
	ap := fieldPath(p, "approvers")
	hasApprovers := a.Approvers.IsList && len(a.Approvers.List) > 0 || !a.Approvers.IsList && a.Approvers.Scalar != ""
	switch {
	case hasApprovers:
		c.value(a.Approvers, ap, TypeList, visible)
	case a.Group == "":
		c.addf(ap, "is required unless a group is given: who may approve")
	}
	if a.Group != "" {
		c.group(a.Group, fieldPath(p, "group"))
	}
	c.approvalMin(a, p)
	switch {
	case a.Timeout == 0:
		c.addf(fieldPath(p, "timeout"), "is required: how long the gate stays open, e.g. 72h")
	case a.Timeout < 0:
		c.addf(fieldPath(p, "timeout"), "must be positive")
	}
	if a.OnTimeout != "" && a.OnTimeout != OnTimeoutFail && a.OnTimeout != OnTimeoutContinue {
		c.addf(fieldPath(p, "on_timeout"), "want %s or %s, got %s", OnTimeoutFail, OnTimeoutContinue, quoteTrunc(a.OnTimeout))
	}
	if a.Message != "" {
		c.value(S(a.Message), fieldPath(p, "message"), TypeString, visible)
	}
}

func (c *checker) group(name, path string) {
	if msg := nameProblem(name); msg != "" {
		c.addf(path, "%s", msg)
		return
	}
	if c.cat != nil && !c.cat.HasApproverGroup(name) {
		c.addf(path, "unknown approver group %s (not in the configuration)", quoteTrunc(name))
	}
}

// approvalMin checks min against the approvers when they are listed here; a group or a
// reference is only known at run time.
func (c *checker) approvalMin(a Approval, p string) {
	mp := fieldPath(p, "min")
	if a.Min < 0 {
		c.addf(mp, "must be at least 1")
		return
	}
	if !a.Approvers.IsList || a.Group != "" {
		return
	}
	var distinct []string
	for _, who := range a.Approvers.List {
		if !slices.Contains(distinct, who) {
			distinct = append(distinct, who)
		}
	}
	if a.Min > len(distinct) {
		c.addf(mp, "needs %d approvers, but only %d are listed", a.Min, len(distinct))
	}
}

func (c *checker) wait(s Step, p string, visible scope) {
	w, wp := *s.Wait, fieldPath(p, "wait")
	// Reported on the fields, so that a duration that did not decode says so only once.
	switch {
	case w.Duration == 0 && w.Until == nil:
		c.addf(fieldPath(wp, "duration"), "is required unless until is given: how long to wait")
	case w.Duration != 0 && w.Until != nil:
		c.addf(fieldPath(wp, "until"), "cannot be given with duration: a wait is one or the other")
	}
	if w.Duration < 0 {
		c.addf(fieldPath(wp, "duration"), "must be positive")
	}
	if w.Every < 0 {
		c.addf(fieldPath(wp, "every"), "must be positive")
	}
	if w.Every != 0 && w.Until == nil && w.Duration != 0 {
		c.addf(fieldPath(wp, "every"), "applies only to a wait with until")
	}
	if w.Until == nil {
		return
	}
	up := fieldPath(wp, "until")
	c.action(*w.Until, fieldPath(up, "action"), fieldPath(up, "args"), visible, true)
	if s.Timeout == 0 {
		c.addf(fieldPath(p, "timeout"), "is required for a wait with until: how long to wait at most")
	}
}
