// Package workflows holds drflow's Temporal workflows and everything a caller needs to start,
// find and read them: task queue names, workflow IDs, search attributes, one JSON input and
// result type per workflow, and the RPO/RTO measurement those results report.
//
// The measurement and naming code here is pure and deterministic, so workflows can call it
// freely (with times from workflow.Now) and the CLI and tests can call it without Temporal.
package workflows
