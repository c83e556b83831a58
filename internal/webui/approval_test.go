package webui

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/runbooks"
	"github.com/drflow/drflow/workflows"
)

// approvalRunbook has one gate for the test deployment's legal group (alice, bob, carol),
// then a notice that needs only the control queue.
const approvalRunbook = `name: ui-approval
description: One approval gate, answered from the Web UI's Update form.
steps:
  - id: approve
    approval:
      group: legal
      min: 1
      timeout: 1h
      message: "Approve from the Web UI?"
  - id: announce
    action: notify
    args:
      message: "approved: ${steps.approve.approved}"
`

// TestApproveGateInWebUI is what an approver without the drflow CLI does: open the waiting
// run in the Web UI, send the Update "approve" with their vote from the workflow page's
// "More Actions > Send an Update" form, and read the validator's answer there. The requester's
// own vote is refused in the form and changes nothing; another approver's vote completes the
// run.
func TestApproveGateInWebUI(t *testing.T) {
	// Installing and starting the servers has its own limits; the deadline is for drflow's work.
	srv := testservers.Temporal(t, testservers.TemporalOptions{SearchAttributes: workflows.SearchAttributeDefinitions(), UI: true})
	driver := testservers.ChromeDriver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c := srv.Client(t)
	startWorkers(ctx, t, c)
	rb, err := runbooks.Parse([]byte(approvalRunbook))
	require.NoError(t, err)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.RunbookWorkflowID(rb.Name, time.Now()), TaskQueue: workflows.ControlTaskQueue},
		workflows.RunbookWorkflow, workflows.RunbookInput{Runbook: rb, RequestedBy: "alice"})
	require.NoError(t, err)
	opened := awaitGate(ctx, t, c, run, "approve")
	gate, _ := opened.Step("approve")
	require.Equal(t, []string{"bob", "carol"}, gate.WaitingFor, "the requester alice may not vote")

	b := newBrowser(t, driver)
	b.open(srv.UIURL + "/namespaces/" + url.PathEscape(srv.Namespace) + "/workflows/" +
		url.PathEscape(run.GetID()) + "/" + url.PathEscape(run.GetRunID()) + "/history")
	form := openUpdateForm(b)
	form.choose(workflows.ApproveUpdate)

	form.setData(`{"gate":"approve","approver":"alice"}`)
	saveScreenshot(t, b, "update-form.png")
	form.submit()
	refusal := form.waitForError()
	assert.Contains(t, refusal, "alice started this run and cannot approve their own request at gate approve")
	saveScreenshot(t, b, "update-rejected.png")
	assert.Equal(t, opened, runbookState(ctx, t, c, run), "a refused vote changes nothing")

	// The form stays open after a refusal; the approver corrects the vote in place.
	form.setData(`{"gate":"approve","approver":"bob"}`)
	form.submit()
	b.waitFor("the update's success", uiWait, modalJS+
		`return !modal() && document.body.innerText.includes("Update successful") ? "sent" : "";`)

	var res workflows.RunbookResult
	require.NoError(t, run.Get(ctx, &res))
	assert.Equal(t, workflows.RunCompleted, res.Status)
	st := runbookState(ctx, t, c, run)
	assert.Equal(t, workflows.RunCompleted, st.Status)
	gate, _ = st.Step("approve")
	assert.Equal(t, workflows.StepDone, gate.Status)
	if assert.Len(t, gate.Votes, 1) {
		assert.Equal(t, "bob", gate.Votes[0].Approver)
		assert.False(t, gate.Votes[0].Reject)
	}
	assert.Equal(t, runbooks.L("bob"), gate.Outputs["approvers"])
	announce, _ := st.Step("announce")
	assert.Equal(t, workflows.StepDone, announce.Status)
	assert.Equal(t, runbooks.S("approved: true"), announce.Outputs["message"])
	assert.Equal(t, []string{"bob"}, acceptedVoters(ctx, t, c, run), "only bob's vote entered the history")

	// The page follows the run: it shows it completed, with bob's vote in the result.
	b.waitFor("the completed run with bob's vote", uiWait, `
		const heading = document.querySelector('h1[data-testid="workflow-id-heading"]');
		const header = heading && heading.parentElement.parentElement;
		return header && header.innerText.includes("Completed") &&
			document.body.innerText.includes('"approver": "bob"') ? "completed" : "";`)
	saveScreenshot(t, b, "update-accepted.png")
}

// awaitGate waits until gate of run is open and returns the run's state then.
func awaitGate(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun, gate string) workflows.RunbookState {
	t.Helper()
	var st workflows.RunbookState
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		st = runbookState(ctx, t, c, run)
		g, _ := st.Step(gate)
		assert.Equal(ct, workflows.StepWaiting, g.Status, "gate %s: %+v", gate, st)
	}, uiWait, 100*time.Millisecond)
	return st
}

func runbookState(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun) workflows.RunbookState {
	t.Helper()
	v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), workflows.RunbookStateQuery)
	require.NoError(t, err)
	var st workflows.RunbookState
	require.NoError(t, v.Get(&st))
	return st
}

// acceptedVoters lists, in history order, the approvers of the votes the run accepted: a vote
// the validator refused never enters the history.
func acceptedVoters(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun) []string {
	t.Helper()
	var voters []string
	events := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for events.HasNext() {
		ev, err := events.Next()
		require.NoError(t, err)
		if ev.GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED {
			continue
		}
		in := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput()
		require.Equal(t, workflows.ApproveUpdate, in.GetName())
		args := in.GetArgs().GetPayloads()
		require.Len(t, args, 1)
		var vote workflows.ApprovalVote
		require.NoError(t, json.Unmarshal(args[0].GetData(), &vote))
		voters = append(voters, vote.Approver)
	}
	return voters
}

// modalJS defines, for the scripts below, shown(el) and modal(): the open "Send an Update"
// dialog, or null. The UI renders the workflow page's header, with its actions menu and this
// dialog, once per layout and hides all but one with CSS, so scripts pick the shown copy.
const modalJS = `
	const shown = el => el.checkVisibility({visibilityProperty: true, opacityProperty: true});
	const modal = () => [...document.querySelectorAll('dialog[data-testid="update-confirmation-modal"]')].find(shown) || null;
`

// updateForm is the Web UI's "Send an Update" dialog of a workflow page (UI 2.34.4 and
// later): a Name select listing the workflow's update handlers, an optional Update ID, a
// JSON Data editor (CodeMirror) and Submit. A refused update shows the validator's error in
// the dialog, which stays open; an accepted one closes it with the toast "Update successful".
type updateForm struct{ b *browser }

// openUpdateForm opens the dialog from the workflow page's "More Actions" menu.
func openUpdateForm(b *browser) updateForm {
	b.t.Helper()
	b.clickOn("More Actions", b.waitForElement("the More Actions button", modalJS+
		`return [...document.querySelectorAll('button[aria-controls="workflow-actions"]')].find(shown) || null;`))
	b.clickOn("Send an Update", b.waitForElement("Send an Update in the actions menu", modalJS+
		`return [...document.querySelectorAll('li[data-testid="update-button"]')]
			.find(li => shown(li) && li.getAttribute("aria-disabled") !== "true") || null;`))
	b.waitForElement("the Send an Update dialog", modalJS+`return modal();`)
	return updateForm{b: b}
}

// choose picks the update name from the Name select, whose options the UI reads from the
// workflow's registered update handlers.
func (f updateForm) choose(name string) {
	f.b.t.Helper()
	f.b.clickOn("the update Name select", f.b.waitForElement("the update Name select", modalJS+
		`const m = modal(); return m && m.querySelector('button[data-testid="update-select-button"]');`))
	f.b.clickOn("the update "+name, f.b.waitForElement("the update "+name+" among the Name options", modalJS+
		`const m = modal();
		return m && [...m.querySelectorAll('li[role="option"]')].find(li => shown(li) && li.textContent.trim() === arguments[0]) || null;`, name))
	f.b.waitFor("the update "+name+" chosen", uiWait, modalJS+
		`const m = modal(); return m && m.querySelector('input[data-testid="update-select"]').value === arguments[0] ? "chosen" : "";`, name)
}

// setData replaces what the Data editor holds with data, typed as a person would, and tabs
// out of it. Leaving the editor re-indents its JSON, which moves the buttons below; waiting
// for the re-indented text keeps the next click on Submit from landing where it was before.
func (f updateForm) setData(data string) {
	f.b.t.Helper()
	editor := f.b.waitForElement("the update's Data editor", modalJS+
		`const m = modal(); return m && m.querySelector('.cm-content[contenteditable="true"]');`)
	f.b.clickOn("the update's Data editor", editor)
	f.b.typeInto("the update's Data editor", editor, keyControl+"a"+keyNull+keyBackspace+data+keyTab)
	f.b.waitFor("the update's Data "+data, uiWait, modalJS+`
		const m = modal(), editor = m && m.querySelector('.cm-content');
		if (!editor || editor.contains(document.activeElement)) return "";
		try {
			return JSON.stringify(JSON.parse(editor.innerText)) === JSON.stringify(JSON.parse(arguments[0])) &&
				editor.innerText.includes("\n") ? "typed" : "";
		} catch (e) { return ""; }`, data)
}

// submit clicks Submit once the form is complete.
func (f updateForm) submit() {
	f.b.t.Helper()
	f.b.clickOn("Submit", f.b.waitForElement("an enabled Submit button", modalJS+
		`const m = modal(), submit = m && m.querySelector('button[data-testid="confirm-modal-button"]');
		return submit && !submit.disabled ? submit : null;`))
}

// waitForError returns the error the dialog shows for a refused update.
func (f updateForm) waitForError() string {
	f.b.t.Helper()
	return f.b.waitFor("the update's refusal in the dialog", uiWait, modalJS+
		`const m = modal(), alert = m && m.querySelector('[role="alert"].error');
		return alert ? alert.innerText.trim() : "";`)
}
