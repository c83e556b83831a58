package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/drflow/drflow/internal/codec"
	"github.com/drflow/drflow/internal/testdeploy"
	"github.com/drflow/drflow/runbooks"
	"github.com/drflow/drflow/workflows"
)

// TestHistoriesHoldNoPlaintextPayloads runs every workflow type with the payload codec on (a
// backup with its replications, a drill, retention and a hold runbook) and reads each
// history straight from the server, without the codec: every payload in it (inputs, results,
// heartbeat details, markers, memos) is sealed. Search attributes are not payloads and stay
// readable by design.
func TestHistoriesHoldNoPlaintextPayloads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := testdeploy.New(t, testdeploy.Options{Replicated: true, Replication: "sync"})
	keyFile := filepath.Join(d.Root, "keys", "payload.keyring")
	_, err := codec.CreateKeyring(keyFile, time.Now())
	require.NoError(t, err)
	appendFile(t, d.ConfigPath, "codec:\n  key_file: keys/payload.keyring\n")
	srv, c := sealedWorker(ctx, t, d.ConfigPath)

	var ids []string
	run := func(id string, wf, in, out any) {
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.ControlTaskQueue}, wf, in)
		require.NoError(t, err)
		require.NoError(t, r.Get(ctx, out), id)
		ids = append(ids, id)
	}
	var backup workflows.BackupResult
	run("sealed-backup", workflows.BackupWorkflow, workflows.BackupInput{Dataset: "files"}, &backup)
	for _, r := range backup.Replicas {
		ids = append(ids, r.WorkflowID)
	}
	var drill workflows.DrillResult
	run("sealed-drill", workflows.RestoreDrillWorkflow, workflows.DrillInput{Dataset: "files"}, &drill)
	var retention workflows.RetentionResult
	run("sealed-retention", workflows.RetentionWorkflow, workflows.RetentionInput{Dataset: "files"}, &retention)
	var hold workflows.RunbookResult
	rb := holdPlaceRunbook(map[string]runbooks.Value{"hold": runbooks.S("case-1"), "dataset": runbooks.S("files"),
		"reason": runbooks.S("matter 7"), "requested_by": runbooks.S("alice"), "ongoing": runbooks.S("false"),
		"points": runbooks.L(backup.RestorePoint)})
	run("sealed-runbook", workflows.RunbookWorkflow, workflows.RunbookInput{Runbook: rb, RequestedBy: "alice"}, &hold)
	require.Equal(t, workflows.RunCompleted, hold.Status, hold.Error)
	require.Len(t, backup.Replicas, 3, "one ReplicateWorkflow per replica")

	raw := srv.Client(t)
	if os.Getenv("DRFLOW_RECORD_HISTORIES") != "" {
		recordSealed(ctx, t, raw, keyFile, map[string]string{"sealed-backup": "BackupWorkflow-sync-replicas",
			backup.Replicas[1].WorkflowID: "ReplicateWorkflow-encrypted", "sealed-drill": "RestoreDrillWorkflow",
			"sealed-retention": "RetentionWorkflow", "sealed-runbook": "RunbookWorkflow-hold-place"})
	}
	for _, id := range ids {
		payloads := 0
		hist := raw.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for hist.HasNext() {
			ev, err := hist.Next()
			require.NoError(t, err)
			for _, p := range payloadsOf(ev) {
				payloads++
				assert.Equal(t, codec.EncodingEncrypted, string(p.GetMetadata()["encoding"]), "%s event %d (%s)", id, ev.GetEventId(), ev.GetEventType())
				for _, clear := range []string{"files", backup.RestorePoint, "case-1", "matter 7", "dataset"} {
					assert.NotContains(t, string(p.GetData()), clear, "%s event %d", id, ev.GetEventId())
				}
			}
		}
		assert.Positive(t, payloads, "%s has payloads", id)
	}
}

// payloadsOf collects every Payload in msg, except search attribute values.
func payloadsOf(msg proto.Message) []*commonpb.Payload {
	var out []*commonpb.Payload
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if m.Descriptor().FullName() == "temporal.api.common.v1.SearchAttributes" {
			return
		}
		if p, ok := m.Interface().(*commonpb.Payload); ok {
			out = append(out, p)
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsMap() && fd.MapValue().Kind() == protoreflect.MessageKind:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { walk(mv.Message()); return true })
			case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.Kind() == protoreflect.MessageKind && !fd.IsMap() && !fd.IsList():
				walk(v.Message())
			}
			return true
		})
	}
	walk(msg.ProtoReflect())
	return out
}

// sealedHistoriesDir is where the workflows package keeps histories recorded with the payload
// codec on, with the (test-only) keyring that seals them; its replay test reads them.
const sealedHistoriesDir = "../workflows/testdata/histories-sealed"

// recordSealed writes the history of each run in names (workflow ID -> file name) as the
// server holds it, sealed, and the keyring that opens it.
func recordSealed(ctx context.Context, t *testing.T, c client.Client, keyFile string, names map[string]string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(sealedHistoriesDir, 0o755))
	for id, name := range names {
		hist := &historypb.History{}
		it := c.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			hist.Events = append(hist.Events, ev)
		}
		data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(sealedHistoriesDir, name+".json"), data, 0o644))
		t.Logf("recorded %s (%d events)", name, len(hist.Events))
	}
	ring, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(sealedHistoriesDir, "payload.keyring"), ring, 0o600))
}
