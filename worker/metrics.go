package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
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
	m.reg.MustRegister(m.up, m.activities, m.seconds,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

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
	}
	return res, err
}
