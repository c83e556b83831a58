package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"

	"github.com/drflow/drflow/activities"
	"github.com/drflow/drflow/workflows"
)

// Activity outcomes, the values of the "outcome" label.
const (
	outcomeSuccess  = "success"
	outcomeError    = "error"
	outcomeCanceled = "canceled"
)

// metrics are the worker's Prometheus metrics, in their own registry (no global state).
// Labels are activity type names and outcomes only: never file names or other customer data.
type metrics struct {
	reg        *prometheus.Registry
	up         prometheus.Gauge
	activities *prometheus.CounterVec
	seconds    *prometheus.HistogramVec

	// Per dataset (and location), from activity results and inputs.
	bytesRead       *prometheus.CounterVec
	bytesUploaded   *prometheus.CounterVec
	bytesRestored   *prometheus.CounterVec
	bytesReplicated *prometheus.CounterVec
	denials         *prometheus.CounterVec
	lastPoint       *prometheus.GaugeVec
	// Per dataset, from workflows through the SDK's metrics handler (sdkMetrics).
	workflowGauges map[string]*prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drflow_worker_up",
			Help: "1 while the worker's pollers are running.",
		}),
		activities: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drflow_activities_total",
			Help: "Activity executions finished by this worker, by activity type and outcome.",
		}, []string{"activity", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "drflow_activity_seconds",
			Help: "Duration of activity executions (one attempt each), by activity type and outcome.",
			// 0.1s to ~7h: planning activities take milliseconds, backups can take hours.
			Buckets: prometheus.ExponentialBuckets(0.1, 4, 10),
		}, []string{"activity", "outcome"}),
	}
	ds := []string{"dataset"}
	m.bytesRead = counter("drflow_backup_read_bytes_total", "Bytes read from sources by backups, by dataset.", ds)
	m.bytesUploaded = counter("drflow_backup_uploaded_bytes_total", "Bytes of new chunks written by backups (after dedup and compression), by dataset.", ds)
	m.bytesRestored = counter("drflow_restored_bytes_total", "Bytes restored and verified by drills, by dataset.", ds)
	m.bytesReplicated = counter("drflow_replicated_bytes_total", "Bytes copied to replica locations, by dataset, destination and copy mode.",
		[]string{"dataset", "destination", "mode"})
	m.denials = counter("drflow_policy_denials_total", "Copies refused by a residency policy, by dataset and destination.",
		[]string{"dataset", "destination"})
	m.lastPoint = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "drflow_last_restore_point_timestamp_seconds",
		Help: "data_as_of of the newest restore point this worker wrote, by dataset; time() minus it is the live RPO exposure.",
	}, ds)
	m.workflowGauges = map[string]*prometheus.GaugeVec{}
	for name, help := range map[string]string{
		workflows.MetricBackupRPOSeconds: "RPO exposure the latest backup closed, by dataset.",
		workflows.MetricDrillRPOSeconds:  "RPO of the latest restore drill, by dataset.",
		workflows.MetricDrillRTOSeconds:  "RTO of the latest restore drill, by dataset.",
		workflows.MetricObjectivesMet:    "1 if the latest run of a kind met its tier's objectives, else 0, by dataset and kind.",
	} {
		labels := ds
		if name == workflows.MetricObjectivesMet {
			labels = []string{workflows.MetricTagDataset, workflows.MetricTagKind}
		}
		m.workflowGauges[name] = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		m.reg.MustRegister(m.workflowGauges[name])
	}
	m.reg.MustRegister(m.up, m.activities, m.seconds,
		m.bytesRead, m.bytesUploaded, m.bytesRestored, m.bytesReplicated, m.denials, m.lastPoint,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func counter(name, help string, labels []string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// observeResult records what one activity attempt did, per dataset, from its typed input
// and result. Labels are configuration names only.
//
//nolint:gocyclo // one case per result type the worker measures
func (m *metrics) observeResult(args []any, res any, err error) {
	if len(args) == 0 {
		return
	}
	var appErr *temporal.ApplicationError
	denied := errors.As(err, &appErr) && appErr.Type() == activities.ErrTypePolicyDenied
	switch in := args[0].(type) {
	case activities.BackupActivityInput:
		if r, ok := res.(activities.BackupActivityResult); ok && err == nil {
			m.bytesRead.WithLabelValues(in.Dataset).Add(float64(r.BytesRead))
			m.bytesUploaded.WithLabelValues(in.Dataset).Add(float64(r.BytesUploaded))
			m.lastPoint.WithLabelValues(in.Dataset).Set(float64(r.DataAsOf.UnixMilli()) / 1e3)
		}
	case activities.DrillActivityInput:
		if r, ok := res.(activities.DrillActivityResult); ok && err == nil {
			m.bytesRestored.WithLabelValues(in.Dataset).Add(float64(r.Bytes))
		}
	case activities.ReplicationPlanInput:
		if r, ok := res.(activities.ReplicationPlan); ok && err == nil && r.Denied() {
			m.denials.WithLabelValues(in.Dataset, in.Location).Inc()
		}
	case activities.ReplicateActivityInput:
		if r, ok := res.(activities.ReplicateActivityResult); ok && err == nil {
			m.bytesReplicated.WithLabelValues(in.Dataset, in.Location, r.Mode).Add(float64(r.BytesCopied))
		}
		if denied {
			m.denials.WithLabelValues(in.Dataset, in.Location).Inc()
		}
	}
}

// sdkMetrics is the Temporal client's metrics handler: it exports the gauges drflow's
// workflows emit (workflows.Metric*) and drops the SDK's own metrics, whose label sets
// vary and which the Temporal server already exports.
type sdkMetrics struct {
	m    *metrics
	tags map[string]string
}

var _ client.MetricsHandler = sdkMetrics{}

func (h sdkMetrics) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	maps.Copy(merged, h.tags)
	maps.Copy(merged, tags)
	return sdkMetrics{m: h.m, tags: merged}
}

func (h sdkMetrics) Counter(string) client.MetricsCounter {
	return client.MetricsNopHandler.Counter("")
}
func (h sdkMetrics) Timer(string) client.MetricsTimer { return client.MetricsNopHandler.Timer("") }

func (h sdkMetrics) Gauge(name string) client.MetricsGauge {
	vec, ok := h.m.workflowGauges[name]
	ds := h.tags[workflows.MetricTagDataset]
	if !ok || ds == "" {
		return client.MetricsNopHandler.Gauge(name)
	}
	labels := prometheus.Labels{workflows.MetricTagDataset: ds}
	if name == workflows.MetricObjectivesMet {
		labels[workflows.MetricTagKind] = h.tags[workflows.MetricTagKind]
	}
	return gaugeFunc(func(v float64) { vec.With(labels).Set(v) })
}

type gaugeFunc func(float64)

func (g gaugeFunc) Update(v float64) { g(v) }

// serve starts the /metrics endpoint on ln; the returned function shuts it down.
func (m *metrics) serve(ln net.Listener, fatal chan<- error) func(context.Context) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			report(fatal, fmt.Errorf("metrics endpoint: %w", err))
		}
	}()
	return srv.Shutdown
}

func (m *metrics) observe(activityType string, d time.Duration, err error) {
	outcome := outcomeSuccess
	switch {
	case err == nil:
	case temporal.IsCanceledError(err), errors.Is(err, context.Canceled):
		outcome = outcomeCanceled
	default:
		outcome = outcomeError
	}
	m.activities.WithLabelValues(activityType, outcome).Inc()
	m.seconds.WithLabelValues(activityType, outcome).Observe(d.Seconds())
}

// activityMetrics is a worker interceptor that counts and times every activity attempt.
type activityMetrics struct {
	interceptor.WorkerInterceptorBase
	m *metrics
}

func (i *activityMetrics) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	a := &activityInbound{m: i.m}
	a.Next = next
	return a
}

type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
	m *metrics
}

func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	start := time.Now()
	res, err := a.Next.ExecuteActivity(ctx, in)
	if !errors.Is(err, activity.ErrResultPending) {
		a.m.observe(activity.GetInfo(ctx).ActivityType.Name, time.Since(start), err)
		a.m.observeResult(in.Args, res, err)
	}
	return res, err
}
