package main

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"go.temporal.io/sdk/temporal"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/workflows"
)

func TestObserveResultCountsPerDataset(t *testing.T) {
	m := newMetrics()
	repl := activities.ReplicateActivityInput{Dataset: "orders", Location: "us-dr", Mode: "encrypted"}
	m.observeResult([]any{repl}, activities.ReplicateActivityResult{Mode: "encrypted", BytesCopied: 300}, nil)
	m.observeResult([]any{repl}, activities.ReplicateActivityResult{Mode: "encrypted", BytesCopied: 200}, nil)
	// A failed copy moved nothing that counts.
	m.observeResult([]any{repl}, activities.ReplicateActivityResult{}, errors.New("store unavailable"))
	denied := temporal.NewNonRetryableApplicationError("denied", activities.ErrTypePolicyDenied, nil)
	m.observeResult([]any{activities.ReplicateActivityInput{Dataset: "orders", Location: "cn-dr"}}, nil, denied)
	m.observeResult([]any{activities.ReplicationPlanInput{Dataset: "orders", Location: "cn-dr"}},
		activities.ReplicationPlan{Dataset: "orders", Destination: "cn-dr", Mode: "denied"}, nil)
	m.observeResult([]any{activities.ReplicationPlanInput{Dataset: "orders", Location: "us-dr"}},
		activities.ReplicationPlan{Dataset: "orders", Destination: "us-dr", Mode: "encrypted"}, nil)

	assert.Equal(t, 500.0, testutil.ToFloat64(m.bytesReplicated.WithLabelValues("orders", "us-dr", "encrypted")))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.denials.WithLabelValues("orders", "cn-dr")))
	assert.Equal(t, 0.0, testutil.ToFloat64(m.denials.WithLabelValues("orders", "us-dr")))
}

func TestSDKMetricsExportsWorkflowGaugesOnly(t *testing.T) {
	m := newMetrics()
	h := sdkMetrics{m: m}.WithTags(map[string]string{"namespace": "default"}).
		WithTags(map[string]string{workflows.MetricTagDataset: "orders", workflows.MetricTagKind: workflows.KindDrill})
	h.Gauge(workflows.MetricDrillRTOSeconds).Update(42)
	h.Gauge(workflows.MetricObjectivesMet).Update(1)
	h.Gauge("temporal_some_sdk_gauge").Update(7) // dropped
	h.Counter("temporal_request").Inc(1)         // dropped

	assert.Equal(t, 42.0, testutil.ToFloat64(m.workflowGauges[workflows.MetricDrillRTOSeconds].WithLabelValues("orders")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.workflowGauges[workflows.MetricObjectivesMet].WithLabelValues("orders", workflows.KindDrill)))
	n, err := testutil.GatherAndCount(m.reg, "temporal_some_sdk_gauge", "temporal_request")
	assert.NoError(t, err)
	assert.Zero(t, n)
}
