package workflows

import (
	"maps"
	"slices"

	"go.temporal.io/sdk/workflow"
)

// Metrics that workflows emit through the SDK's metrics handler, tagged with MetricTagDataset
// (and, for MetricObjectivesMet, MetricTagKind). The SDK drops them while a workflow replays,
// so each run reports its figures once. drflow-worker exports them to Prometheus; see
// worker/README.md.
const (
	// MetricBackupRPOSeconds is the RPO exposure a backup closed (BackupRPO), when known.
	MetricBackupRPOSeconds = "drflow_backup_rpo_seconds"
	// MetricDrillRPOSeconds and MetricDrillRTOSeconds are a drill's measured figures.
	MetricDrillRPOSeconds = "drflow_drill_rpo_seconds"
	MetricDrillRTOSeconds = "drflow_drill_rto_seconds"
	// MetricObjectivesMet is 1 when a run met its tier's objectives, else 0.
	MetricObjectivesMet = "drflow_objectives_met"

	MetricTagDataset = "dataset"
	MetricTagKind    = "kind"
)

// gauges sets the gauges of one run of kind on dataset.
func gauges(ctx workflow.Context, dataset, kind string, values map[string]float64) {
	h := workflow.GetMetricsHandler(ctx).WithTags(map[string]string{MetricTagDataset: dataset, MetricTagKind: kind})
	// In name order: workflow code keeps even side-effect-free loops deterministic.
	for _, name := range slices.Sorted(maps.Keys(values)) {
		h.Gauge(name).Update(values[name])
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
