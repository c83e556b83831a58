package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"
)

// details shows the run's steps as its current details: the Web UI shows them on the run's
// page, so a responder sees at a glance which step runs and which gate waits for whom.
func (r *runbookRun) details(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, runbookDetails(r.state))
}

func runbookDetails(s RunbookState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Runbook %s**, requested by %s: %s\n\n", s.Runbook, s.RequestedBy, s.Status)
	b.WriteString("| step | kind | status | detail |\n|---|---|---|---|\n")
	for _, st := range s.Steps {
		id := st.ID
		if st.Parent != "" {
			id = "↳ " + id
		}
		kind := st.Kind
		if st.Action != "" {
			kind += " " + st.Action
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", id, kind, st.Status, stepDetail(st))
	}
	if s.Error != "" {
		fmt.Fprintf(&b, "\nError: %s", markdownCell(s.Error))
	}
	return b.String()
}

func stepDetail(st StepState) string {
	var parts []string
	if st.Message != "" && st.Status == StepWaiting {
		parts = append(parts, st.Message)
	}
	if len(st.WaitingFor) > 0 {
		parts = append(parts, "waiting for "+strings.Join(st.WaitingFor, ", "))
	}
	for _, v := range st.Votes {
		verb := "approved"
		if v.Reject {
			verb = "rejected"
		}
		parts = append(parts, v.Approver+" "+verb)
	}
	if st.Error != "" {
		parts = append(parts, st.Error)
	}
	return markdownCell(strings.Join(parts, "; "))
}

// markdownCell keeps a value inside one table cell.
func markdownCell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}
