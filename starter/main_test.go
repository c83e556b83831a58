package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// exampleConfig copies the shipped example into a temporary directory, so its relative
// store and key paths land there.
func exampleConfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../examples/drflow.yaml")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "drflow.yaml")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

func TestConfigValidate(t *testing.T) {
	code, out, errOut := runCLI(t, "config", "validate", "--config", exampleConfig(t))
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "is valid")
	assert.Contains(t, out, "datasets")

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("jurisdictions: []\nlocatoins: []\n"), 0o600))
	code, _, errOut = runCLI(t, "config", "validate", "--config", bad)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut, "locatoins", "the error names the unknown field")
}

func TestLocationsCheckExample(t *testing.T) {
	path := exampleConfig(t)
	code, out, errOut := runCLI(t, "locations", "check", "--config", path)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "eu-primary")
	assert.Contains(t, out, "drflow", "local stores are enforced by drflow, not by a server")

	code, out, errOut = runCLI(t, "locations", "check", "--config", path, "--json")
	require.Equal(t, exitOK, code, errOut)
	var reports []locationReport
	require.NoError(t, json.Unmarshal([]byte(out), &reports))
	require.NotEmpty(t, reports)
	for _, r := range reports {
		assert.Empty(t, r.Error, r.Name)
		assert.Equal(t, "local", r.Provider, r.Name)
		assert.True(t, r.LegalHold && r.Retention, "%s: local stores enforce holds and retention", r.Name)
		assert.False(t, r.ServerEnforced, "%s: the local store must not claim server enforcement", r.Name)
		assert.NotEmpty(t, r.Jurisdiction, r.Name)
	}
}

func TestLocationsCheckReportsFailures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drflow.yaml")
	// An azblob location whose connection string variable is unset cannot be opened.
	cfg := `
jurisdictions: [{name: EU, regions: [eu-west-1]}]
keys: [{name: k, jurisdiction: EU, provider: local, path: ./k}]
locations:
  - {name: disk, provider: local, path: ./disk, region: eu-west-1}
  - {name: az, provider: azblob, container: c, connection_string_env: DRFLOW_CHECK_UNSET, region: eu-west-1}
policies: [{name: p, home: EU}]
tiers: [{name: t, level: 1, rpo: 1h, rto: 1h}]
datasets: [{name: d, classification: internal, policy: p, tier: t, primary: disk, source: {type: directory, path: ./d}}]
`
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	t.Setenv("DRFLOW_CHECK_UNSET", "")
	code, out, errOut := runCLI(t, "locations", "check", "--config", path)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, out, "FAILED")
	assert.Contains(t, out, "DRFLOW_CHECK_UNSET", "the failure says what is missing")
	assert.Contains(t, errOut, "1 of 2 locations failed the check: az")
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		give []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"config", "validate", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"config", "validate", "extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			code, _, errOut := runCLI(t, tt.give...)
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, errOut, tt.want)
		})
	}
	code, out, _ := runCLI(t)
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "locations check")
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		give string
		want int64
	}{
		{"2GiB", 2 << 30}, {"512MiB", 512 << 20}, {"1.5GiB", 3 << 29}, {"100MB", 100e6}, {"4096", 4096}, {"8KiB", 8192},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.give)
		require.NoError(t, err, tt.give)
		assert.Equal(t, tt.want, got, tt.give)
	}
	for _, bad := range []string{"", "-1GiB", "lots", "0"} {
		_, err := parseSize(bad)
		assert.Error(t, err, bad)
	}
}

func TestBenchCommand(t *testing.T) {
	code, out, errOut := runCLI(t, "bench", "--size", "16MiB", "--baselines=false")
	require.Equal(t, exitOK, code, errOut)
	for _, name := range []string{"backup_MBps=", "incremental_upload_ratio=", "restore_MBps=", "verify_MBps=", "dedup_ratio=", "peak_rss_MiB="} {
		assert.Contains(t, out, name)
	}
	code, _, errOut = runCLI(t, "bench", "--size", "huge")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--size")
}
