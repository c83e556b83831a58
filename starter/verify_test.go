package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drflow/drflow/providers"
)

// corruptPack flips one byte inside the first blob of the dataset's largest pack, which every
// restore point uses, and returns the pack's ID.
func (f dataFixture) corruptPack(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	st := f.openStore(t)
	prefix := "datasets/files/packs/"
	var largest providers.ObjectInfo
	require.NoError(t, st.List(ctx, prefix, func(oi providers.ObjectInfo) error {
		if oi.Size > largest.Size {
			largest = oi
		}
		return nil
	}))
	require.NotEmpty(t, largest.Key)
	rc, err := st.Get(ctx, largest.Key, providers.GetOptions{})
	require.NoError(t, err)
	data, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	require.Greater(t, len(data), 1000)
	data[100] ^= 0x40
	_, err = st.Put(ctx, largest.Key, bytes.NewReader(data), providers.PutOptions{})
	require.NoError(t, err)
	return largest.Key[strings.LastIndex(largest.Key, "/")+1:]
}

// chunksPassed reads "N of M chunks passed" from verify's output.
func chunksPassed(t *testing.T, out string) (passed, total int) {
	t.Helper()
	m := regexp.MustCompile(`([0-9]+) of ([0-9]+) chunks passed`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	passed, _ = strconv.Atoi(m[1])
	total, _ = strconv.Atoi(m[2])
	return passed, total
}

func TestVerifyCommand(t *testing.T) {
	f := newDataFixture(t, 2)

	code, out, errOut := runCLI(t, "verify", "files", "--config", f.ConfigPath)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "restore point "+f.points[1]+" of files in eu-primary")
	assert.Contains(t, out, "verified")
	assert.Regexp(t, `chunks passed: read, authenticated and checked against their IDs \([0-9]+ bytes\); 4 entries and their file hashes checked`, out)
	passed, total := chunksPassed(t, out)
	assert.Positive(t, total)
	assert.Equal(t, total, passed)

	// An older point, as JSON.
	code, out, errOut = runCLI(t, "verify", "files", "--config", f.ConfigPath, "--point", f.points[0], "--json")
	require.Equal(t, exitOK, code, errOut)
	var full verifyReport
	require.NoError(t, json.Unmarshal([]byte(out), &full), out)
	assert.True(t, full.OK)
	assert.Equal(t, f.points[0], full.Point)
	assert.Equal(t, float64(100), full.SamplePercent)
	assert.Positive(t, full.ChunksChecked)
	assert.Equal(t, full.ChunksTotal, full.ChunksChecked)
	assert.Equal(t, totalBytes(f.firstFiles), full.BytesChecked)
	assert.Empty(t, full.Failures)

	// A seeded sample is reproducible.
	var samples [2]verifyReport
	for i := range samples {
		code, out, errOut = runCLI(t, "verify", "files", "--config", f.ConfigPath, "--sample", "50", "--seed", "7", "--json")
		require.Equal(t, exitOK, code, errOut)
		require.NoError(t, json.Unmarshal([]byte(out), &samples[i]), out)
	}
	assert.Equal(t, int64(7), samples[0].Seed)
	assert.Equal(t, float64(50), samples[0].SamplePercent)
	assert.Equal(t, samples[0].ChunksChecked, samples[1].ChunksChecked)
	assert.Equal(t, samples[0].BytesChecked, samples[1].BytesChecked)
	assert.LessOrEqual(t, samples[0].ChunksChecked, samples[0].ChunksTotal)

	// Without --seed a seed is drawn and printed so the sample can be repeated.
	code, out, errOut = runCLI(t, "verify", "files", "--config", f.ConfigPath, "--sample", "25")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `sample of 25% \(seed [0-9]+\) of the [0-9]+ distinct chunks: [0-9]+ passed`, out)
	assert.Regexp(t, `check the same sample again with --sample 25 --seed [0-9]+`, out)
	assertNoFileNames(t, out, errOut)

	// One flipped byte in a pack: exit 1, naming the chunk and the pack, never a file.
	pack := f.corruptPack(t)
	code, out, errOut = runCLI(t, "verify", "files", "--config", f.ConfigPath)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, out, "FAILED verification")
	passed, total = chunksPassed(t, out)
	assert.Less(t, passed, total)
	assert.Regexp(t, `chunk [0-9a-f]{64} in pack `+pack+`: `, out)
	assert.Regexp(t, `drflow verify: restore point `+f.points[1]+` of files failed verification: [0-9]+ failures; first: integrity check failed: chunk [0-9a-f]{64} in pack `+pack+`: `, errOut)
	assertNoFileNames(t, out, errOut)

	code, out, _ = runCLI(t, "verify", "files", "--config", f.ConfigPath, "--json")
	assert.Equal(t, exitFailed, code)
	var bad verifyReport
	require.NoError(t, json.Unmarshal([]byte(out), &bad), out)
	assert.False(t, bad.OK)
	require.NotEmpty(t, bad.Failures)
	assert.Equal(t, pack, bad.Failures[0].Pack)
	assert.Len(t, bad.Failures[0].Chunk, 64)
	assert.NotEmpty(t, bad.Failures[0].Reason)
	assertNoFileNames(t, out)
}
