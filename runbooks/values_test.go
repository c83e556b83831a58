package runbooks

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResolveParams(t *testing.T) {
	rb := Runbook{Name: "legal-hold", Params: []Param{
		{Name: "dataset", Type: TypeDataset, Description: "the dataset to hold"},
		{Name: "approvers", Type: TypeList, Default: &Value{List: []string{"alice", "bob"}, IsList: true}},
		{Name: "grace", Type: TypeDuration, Default: &Value{Scalar: "7d"}},
		{Name: "from", Type: TypeTime},
		{Name: "max", Type: TypeInt, Default: &Value{Scalar: "10"}},
		{Name: "ongoing", Type: TypeBool, Default: &Value{Scalar: "false"}},
		{Name: "point", Type: TypePoint, Default: &Value{Scalar: PointLatest}},
		{Name: "location", Type: TypeLocation, Default: &Value{Scalar: "eu-primary"}},
		{Name: "note", Type: TypeString, Default: &Value{Scalar: ""}},
	}}
	defaults := map[string]Value{
		"approvers": L("alice", "bob"), "grace": S("7d"), "max": S("10"), "ongoing": S("false"),
		"point": S(PointLatest), "location": S("eu-primary"), "note": S(""),
	}
	with := func(extra map[string]Value) map[string]Value {
		out := map[string]Value{}
		for k, v := range defaults {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		give    map[string]Value
		want    map[string]Value
		wantErr string
	}{
		{name: "defaults", give: map[string]Value{"dataset": S("customers"), "from": S("2025-01-02")},
			want: with(map[string]Value{"dataset": S("customers"), "from": S("2025-01-02")})},
		{name: "given values win", give: map[string]Value{"dataset": S("orders-db"), "from": S("2025-01-02T03:04:05+01:00"), "approvers": L("carol"),
			"max": S("-1"), "ongoing": S("true"), "point": S("20250102T030405.000Z-0a1b2c3d"), "grace": S("1d12h")},
			want: with(map[string]Value{"dataset": S("orders-db"), "from": S("2025-01-02T03:04:05+01:00"), "approvers": L("carol"),
				"max": S("-1"), "ongoing": S("true"), "point": S("20250102T030405.000Z-0a1b2c3d"), "grace": S("1d12h")})},
		{name: "empty list", give: map[string]Value{"dataset": S("d"), "from": S("2025-01-02"), "approvers": L()},
			want: with(map[string]Value{"dataset": S("d"), "from": S("2025-01-02"), "approvers": L()})},
		{name: "missing", give: map[string]Value{"from": S("2025-01-02")}, wantErr: "dataset: is required (a dataset: the dataset to hold)"},
		{name: "missing without description", give: map[string]Value{"dataset": S("d")}, wantErr: "from: is required (a time: no description)"},
		{name: "unknown", give: map[string]Value{"dataset": S("d"), "from": S("2025-01-02"), "colour": S("red")},
			wantErr: "colour: unknown parameter of runbook legal-hold (it takes dataset, approvers, grace, from, max, ongoing, point, location, note)"},
		{name: "list for a scalar", give: map[string]Value{"dataset": L("d"), "from": S("2025-01-02")}, wantErr: "dataset: want a single value of type dataset, got a list"},
		{name: "scalar for a list", give: map[string]Value{"dataset": S("d"), "from": S("2025-01-02"), "approvers": S("alice")},
			wantErr: `approvers: want a list (type list), got "alice"`},
		{name: "bad dataset", give: map[string]Value{"dataset": S("../etc"), "from": S("2025-01-02")}, wantErr: `dataset: want a dataset name (type dataset), got "../etc"`},
		{name: "bad time", give: map[string]Value{"dataset": S("d"), "from": S("02/01/2025")}, wantErr: "from: want a time in RFC 3339"},
		{name: "bad int", give: map[string]Value{"dataset": S("d"), "from": S("2025-01-02"), "max": S("1.5")}, wantErr: `max: want a whole number (type int), got "1.5"`},
		{name: "bad bool", give: map[string]Value{"dataset": S("d"), "from": S("2025-01-02"), "ongoing": S("yes")}, wantErr: "ongoing: want true or false"},
		{name: "bad duration", give: map[string]Value{"dataset": S("d"), "from": S("2025-01-02"), "grace": S("a week")}, wantErr: "grace: want a duration"},
		{name: "bad point", give: map[string]Value{"dataset": S("d"), "from": S("2025-01-02"), "point": S("20250102T030405Z-0a1b2c3d")},
			wantErr: "point: want a restore point ID such as 20250102T030405.000Z-0a1b2c3d"},
		{name: "all problems at once", give: map[string]Value{"max": S("x"), "zz": S("1"), "aa": S("1")},
			wantErr: "dataset: is required (a dataset: the dataset to hold)\nfrom: is required (a time: no description)\nmax: want a whole number (type int), got \"x\"\n" +
				"aa: unknown parameter of runbook legal-hold (it takes dataset, approvers, grace, from, max, ongoing, point, location, note)\n" +
				"zz: unknown parameter of runbook legal-hold (it takes dataset, approvers, grace, from, max, ongoing, point, location, note)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveParams(rb, tt.give)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestResolveParamsCopies(t *testing.T) {
	def := L("alice")
	rb := Runbook{Name: "x", Params: []Param{{Name: "who", Type: TypeList, Default: &def}}}
	got, err := ResolveParams(rb, nil)
	require.NoError(t, err)
	got["who"].List[0] = "mallory"
	assert.Equal(t, L("alice"), def)
}

func TestParseTime(t *testing.T) {
	got, err := ParseTime("2025-01-02")
	require.NoError(t, err)
	assert.Equal(t, time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC), got)
	got, err = ParseTime("2025-01-02T03:04:05Z")
	require.NoError(t, err)
	assert.Equal(t, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), got)
	_, err = ParseTime("2025-13-02")
	assert.Error(t, err)
}

// The point type accepts what internal/repo names a restore point (its pointTimeLayout, a
// dash, 8 lower-case hex digits); that package is not imported here, to keep this format
// package and its fuzzer free of the storage stack.
func TestIsPointID(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{"20250102T030405.000Z-0a1b2c3d", true},
		{"20250102T030405.123Z-ffffffff", true},
		{"20250102T030405.000Z-0A1B2C3D", false},
		{"20250102T030405Z-0a1b2c3d", false},
		{"20251302T030405.000Z-0a1b2c3d", false},
		{"20250102T030405.000Z-0a1b2c3", false},
		{"20250102T030405.000Z-0a1b2c3g", false},
		{"20250102T030405.000Z0a1b2c3d", false},
		{"20250102T030405.000Z--a1b2c3d", false},
		{"", false},
		{"latest", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, isPointID(tt.give), tt.give)
	}
}
