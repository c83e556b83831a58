package runbooks

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRefs(t *testing.T) {
	tests := []struct {
		give    string
		want    []Ref
		wantErr string
	}{
		{give: "plain text"},
		{give: "${params.dataset}", want: []Ref{{Scope: ScopeParams, Name: "dataset"}}},
		{give: "${params.my.param}", want: []Ref{{Scope: ScopeParams, Name: "my.param"}}},
		{give: "hold ${params.hold} by ${run.requested_by} in ${run.id}", want: []Ref{
			{Scope: ScopeParams, Name: "hold"}, {Scope: ScopeRun, Name: RunRequestedBy}, {Scope: ScopeRun, Name: RunID}}},
		{give: "${steps.place.hold}", want: []Ref{{Scope: ScopeSteps, Name: "place", Field: "hold"}}},
		{give: "${steps.eu.check.ok}", want: []Ref{{Scope: ScopeSteps, Name: "eu.check", Field: "ok"}}},
		{give: "costs $${not.a.ref} and ${params.x}", want: []Ref{{Scope: ScopeParams, Name: "x"}}},
		{give: "a lone $ and } are text"},
		{give: "${params}", wantErr: `malformed reference "${params}": want ${params.NAME}`},
		{give: "${params.Data}", wantErr: "want ${params.NAME}"},
		{give: "${steps.place}", wantErr: "want ${steps.ID.FIELD}"},
		{give: "${steps.place.Hold}", wantErr: "want ${steps.ID.FIELD}"},
		{give: "${run}", wantErr: "want ${run.requested_by} or ${run.id}"},
		{give: "${run.id.x}", wantErr: "want ${run.requested_by} or ${run.id}"},
		{give: "${ params.x }", wantErr: "a reference starts with params., steps. or run."},
		{give: "${}", wantErr: "malformed reference"},
		{give: "x ${params.x", wantErr: `reference "${params.x" has no closing }`},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, err := ParseRefs(tt.give)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			for _, r := range got {
				back, err := ParseRefs(r.String())
				require.NoError(t, err)
				assert.Equal(t, []Ref{r}, back, "String renders what ParseRefs reads")
			}
		})
	}
}

func TestSubstitute(t *testing.T) {
	values := map[Ref]Value{
		{Scope: ScopeParams, Name: "dataset"}:                      S("customers"),
		{Scope: ScopeParams, Name: "approvers"}:                    L("alice", "bob"),
		{Scope: ScopeParams, Name: "none"}:                         L(),
		{Scope: ScopeSteps, Name: "place", Field: "hold"}:          S("case-42"),
		{Scope: ScopeSteps, Name: "gate", Field: "approvers"}:      L("carol"),
		{Scope: ScopeRun, Name: RunRequestedBy}:                    S("dave"),
		{Scope: ScopeParams, Name: "tricky"}:                       S("${run.id}"),
		{Scope: ScopeSteps, Name: "place", Field: "empty_message"}: S(""),
	}
	lookup := func(r Ref) (Value, bool) {
		v, ok := values[r]
		return v, ok
	}
	tests := []struct {
		name    string
		give    Value
		want    Value
		wantErr string
	}{
		{name: "literal", give: S("hello"), want: S("hello")},
		{name: "empty", give: S(""), want: S("")},
		{name: "whole scalar", give: S("${params.dataset}"), want: S("customers")},
		{name: "whole list stays a list", give: S("${params.approvers}"), want: L("alice", "bob")},
		{name: "whole empty list", give: S("${params.none}"), want: L()},
		{name: "step output", give: S("${steps.gate.approvers}"), want: L("carol")},
		{name: "spliced", give: S("hold ${steps.place.hold} for ${run.requested_by}"), want: S("hold case-42 for dave")},
		{name: "escape", give: S("$${params.dataset} is ${params.dataset}"), want: S("${params.dataset} is customers")},
		{name: "values are not substituted again", give: S("x ${params.tricky}"), want: S("x ${run.id}")},
		{name: "empty output", give: S("[${steps.place.empty_message}]"), want: S("[]")},
		{name: "list items", give: L("${run.requested_by}", "ops-${params.dataset}", "plain"), want: L("dave", "ops-customers", "plain")},
		{name: "empty list", give: L(), want: L()},
		{name: "list in text", give: S("ask ${params.approvers}"), wantErr: "${params.approvers} is a list; only a value that is exactly this reference can take a list"},
		{name: "list in a list item", give: L("${params.approvers}"), wantErr: "${params.approvers} is a list"},
		{name: "unknown whole", give: S("${params.nope}"), wantErr: "${params.nope}: no such value"},
		{name: "unknown spliced", give: S("a ${steps.x.y} b"), wantErr: "${steps.x.y}: no such value"},
		{name: "malformed", give: S("${nope}"), wantErr: "malformed reference"},
		{name: "malformed item", give: L("${params.x"), wantErr: "has no closing }"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Substitute(tt.give, lookup)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// A workflow keeps the values it resolved: they must not share memory with its state.
func TestSubstituteCopies(t *testing.T) {
	src := L("alice", "bob")
	got, err := Substitute(S("${params.approvers}"), func(Ref) (Value, bool) { return src, true })
	require.NoError(t, err)
	got.List[0] = "mallory"
	assert.Equal(t, L("alice", "bob"), src)

	give := L("alice")
	got, err = Substitute(give, func(Ref) (Value, bool) { return Value{}, false })
	require.NoError(t, err)
	got.List[0] = "mallory"
	assert.Equal(t, L("alice"), give)
}
