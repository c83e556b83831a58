package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap/zaptest"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/internal/stores"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/providers"
)

// dataFixture is a deployment whose dataset "files" has restore points made by the worker's
// Backup activity, with the worker's state where the CLI looks for it by default.
type dataFixture struct {
	testdeploy.Deployment
	// files is the source as of the newest point; firstFiles as of the first.
	files, firstFiles map[string]string
	// points are the restore point IDs, oldest first.
	points []string
}

// fixtureNames are the source's file names; no command output may contain them.
var fixtureNames = []string{"patient-records-secret.txt", "ledger-2024.csv", "scan-0042.bin"}

func newDataFixture(t *testing.T, backups int) dataFixture {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	blob := make([]byte, 3<<20) // several chunks
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	files := map[string]string{
		fixtureNames[0]:           strings.Repeat("name,diagnosis\n", 4000),
		"dept/" + fixtureNames[1]: strings.Repeat("2024-01-01,100.00\n", 3000),
		"dept/" + fixtureNames[2]: string(blob),
	}
	f := dataFixture{Deployment: testdeploy.New(t, testdeploy.Options{Files: files}), firstFiles: files}
	f.files = files

	acts, err := activities.New(context.Background(), f.Config, activities.Options{
		Region: "eu-west-1", StateDir: filepath.Join(f.Root, "var", "state"), Logger: zaptest.NewLogger(t),
	})
	require.NoError(t, err)
	env := (&testsuite.WorkflowTestSuite{}).NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	for i := range backups {
		if i > 0 {
			f.files = copyMap(f.files)
			f.files[fixtureNames[0]] += fmt.Sprintf("added in backup %d\n", i)
			require.NoError(t, os.WriteFile(filepath.Join(f.Source, fixtureNames[0]), []byte(f.files[fixtureNames[0]]), 0o644))
		}
		val, err := env.ExecuteActivity(acts.Backup, activities.BackupActivityInput{Dataset: "files", RunID: fmt.Sprintf("run-%d", i)})
		require.NoError(t, err)
		var res activities.BackupActivityResult
		require.NoError(t, val.Get(&res))
		f.points = append(f.points, res.Point)
	}
	require.NoError(t, acts.Close(context.Background()))
	return f
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func totalBytes(files map[string]string) int64 {
	var n int64
	for _, v := range files {
		n += int64(len(v))
	}
	return n
}

// assertNoFileNames checks that output names none of the source's files.
func assertNoFileNames(t *testing.T, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		for _, name := range fixtureNames {
			assert.NotContains(t, out, name)
		}
	}
}

// openStore opens the deployment's primary store as a second process would.
func (f dataFixture) openStore(t *testing.T) providers.Store {
	t.Helper()
	loc, ok := f.Config.Location("eu-primary")
	require.True(t, ok)
	st, err := stores.Open(context.Background(), loc)
	require.NoError(t, err)
	return st
}

func TestPointsCommand(t *testing.T) {
	f := newDataFixture(t, 2)

	code, out, errOut := runCLI(t, "points", "files", "--config", f.ConfigPath)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "dataset files: 2 restore points in eu-primary")
	assert.Regexp(t, `ID\s+DATA AS OF\s+FILES\s+BYTES\s+WHERE\s+PROTECTION`, out)
	for i, id := range f.points {
		files := f.firstFiles
		if i == 1 {
			files = f.files
		}
		assert.Regexp(t, fmt.Sprintf(`%s\s+\S+Z\s+3\s+%d\s+eu-primary\s+-`, id, totalBytes(files)), out)
	}
	assertNoFileNames(t, out, errOut)

	// A legal hold and a retention on the newest point show in both forms.
	st := f.openStore(t)
	key := repo.PointObjectKey("files", f.points[1])
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	require.NoError(t, st.SetLegalHold(context.Background(), key, true))
	require.NoError(t, st.SetRetention(context.Background(), key, providers.Retention{Mode: providers.Governance, Until: until}))
	t.Cleanup(func() {
		assert.NoError(t, st.SetLegalHold(context.Background(), key, false))
		assert.NoError(t, st.SetRetention(context.Background(), key, providers.Retention{Mode: providers.Governance}))
	})

	code, out, errOut = runCLI(t, "points", "--json", "files", "--config", f.ConfigPath)
	require.Equal(t, exitOK, code, errOut)
	var rep pointsReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	assert.Equal(t, "files", rep.Dataset)
	assert.Equal(t, "eu-primary", rep.Location)
	assert.Equal(t, "EU", rep.Jurisdiction)
	require.Len(t, rep.Points, 2)
	for i, p := range rep.Points {
		assert.Equal(t, f.points[i], p.ID)
		assert.Equal(t, int64(3), p.Files)
		assert.Equal(t, "eu-primary", p.Location)
		assert.Positive(t, p.StoredBytes)
		assert.False(t, p.DataAsOf.IsZero())
	}
	assert.Equal(t, totalBytes(f.firstFiles), rep.Points[0].Bytes)
	assert.Equal(t, totalBytes(f.files), rep.Points[1].Bytes)
	assert.False(t, rep.Points[0].LegalHold)
	assert.Nil(t, rep.Points[0].RetainedUntil)
	assert.True(t, rep.Points[1].LegalHold)
	require.NotNil(t, rep.Points[1].RetainedUntil)
	assert.True(t, until.Equal(*rep.Points[1].RetainedUntil), "%s != %s", until, rep.Points[1].RetainedUntil)
	assert.Equal(t, "governance", rep.Points[1].RetentionMode)

	code, out, errOut = runCLI(t, "points", "files", "--config", f.ConfigPath)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "held, retained until "+until.Format(time.RFC3339)+" (governance)")
}

func TestPointsCommandOutsideHome(t *testing.T) {
	f := newDataFixture(t, 1)

	// Another state directory than the worker's: refused, and no second signing key made.
	other := t.TempDir()
	code, out, errOut := runCLI(t, "points", "files", "--config", f.ConfigPath, "--state-dir", other)
	assert.Equal(t, exitFailed, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "drflow points: must run in EU, home of dataset files, beside the worker of region eu-west-1 and with its --state-dir: key not on this machine: ")
	assert.Contains(t, errOut, "audit signing key of region eu-west-1")
	entries, err := os.ReadDir(other)
	require.NoError(t, err)
	assert.Empty(t, entries)

	// A machine without the home KEK: refused, and no new KEK made.
	keyring := f.Config.KEKs[0].Path
	require.NoError(t, os.Rename(keyring, keyring+".elsewhere"))
	code, _, errOut = runCLI(t, "points", "files", "--config", f.ConfigPath)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut, "key eu-kek of EU: keyring "+keyring+": does not exist")
	assert.NoFileExists(t, keyring)
}

func TestDataCommandsWithoutPoints(t *testing.T) {
	f := newDataFixture(t, 0)
	code, out, errOut := runCLI(t, "points", "files", "--config", f.ConfigPath)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "dataset files has no restore point in eu-primary (")

	code, out, errOut = runCLI(t, "points", "files", "--config", f.ConfigPath, "--json")
	require.Equal(t, exitOK, code, errOut)
	assert.JSONEq(t, `{"dataset":"files","location":"eu-primary","jurisdiction":"EU","points":[]}`, out)

	code, _, errOut = runCLI(t, "verify", "files", "--config", f.ConfigPath)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut, "drflow verify: dataset files has no restore point in eu-primary yet")

	target := filepath.Join(t.TempDir(), "out")
	code, _, errOut = runCLI(t, "restore", "files", "--point", "latest", "--to", target, "--config", f.ConfigPath)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut, "drflow restore: dataset files has no restore point in eu-primary yet")
	assert.NoDirExists(t, target, "nothing is created before a point is found")
}

func TestDataCommandsBadInput(t *testing.T) {
	f := newDataFixture(t, 1)
	tests := []struct {
		give     []string
		wantCode int
		want     string
	}{
		{[]string{"points"}, exitUsage, "DATASET is required"},
		{[]string{"points", "nope"}, exitFailed, `dataset "nope" is not in`},
		{[]string{"points", "files", "--location", "us-dr"}, exitUsage, `--location "us-dr" holds no copy of dataset files (its locations: eu-primary)`},
		{[]string{"verify", "files", "--point", "yesterday"}, exitUsage, `--point "yesterday": want "latest" or a restore point ID`},
		{[]string{"verify", "files", "--sample", "0"}, exitUsage, "--sample 0: want a percentage greater than 0 and at most 100"},
		{[]string{"verify", "files", "--sample", "101"}, exitUsage, "--sample 101"},
		{[]string{"verify", "files", "--point", "20250102T030405.000Z-0a1b2c3d"}, exitFailed,
			"dataset files has no restore point 20250102T030405.000Z-0a1b2c3d in eu-primary (newest: " + f.points[0]},
		{[]string{"restore", "files", "--to", t.TempDir()}, exitUsage, "--point is required"},
		{[]string{"restore", "files", "--point", "latest"}, exitUsage, "--to is required"},
		{[]string{"restore", "files", "--point", "latest", "--to", "postgres://postgres@127.0.0.1:5432/x"}, exitUsage,
			"--to is a PostgreSQL DSN, but dataset files is a directory dataset"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			code, out, errOut := runCLI(t, append(tt.give, "--config", f.ConfigPath)...)
			assert.Equal(t, tt.wantCode, code, errOut)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tt.want)
		})
	}
}
