package activities

import (
	"context"
	"slices"
	"time"

	"github.com/drflow/drflow/internal/config"
)

// PlanInput names what a workflow is about to work on.
type PlanInput struct {
	Dataset string `json:"dataset"`
	// Location is where the work happens; empty for the dataset's primary.
	Location string `json:"location,omitempty"`
}

// PlanResult is the routing and the objectives of a dataset, read from configuration, which
// workflows cannot read themselves.
type PlanResult struct {
	Dataset      string `json:"dataset"`
	Location     string `json:"location"`
	Region       string `json:"region"` // of Location: its task queue runs the data activities
	Jurisdiction string `json:"jurisdiction"`
	Tier         string `json:"tier"`
	TierLevel    int    `json:"tier_level"`
	// RPO and RTO are the tier's objectives (JSON: nanoseconds).
	RPO time.Duration `json:"rpo"`
	RTO time.Duration `json:"rto"`
	// Replicas are the dataset's replica locations, in configuration order; Replication
	// is the tier's mode (sync: a backup is complete once every replica holds it; async:
	// once the primary does).
	Replicas    []string `json:"replicas"`
	Replication string   `json:"replication"`
	// Label names the dataset in search attributes and child workflow IDs: its name, or a
	// keyed hash of it (search_attributes: hashed). Empty in plans recorded before labels;
	// the name is used then.
	Label string `json:"label,omitempty"`
}

// Plan runs on the control task queue: it needs only the configuration.
func (a *Activities) Plan(_ context.Context, in PlanInput) (PlanResult, error) {
	ds, loc, err := a.lookup(in.Dataset, in.Location)
	if err != nil {
		return PlanResult{}, err
	}
	tier, ok := a.Config.Tier(ds.Tier)
	if !ok {
		return PlanResult{}, nonRetryable(ErrTypeNotFound, "dataset %s: tier %q is not configured", ds.Name, ds.Tier)
	}
	return PlanResult{
		Dataset:      ds.Name,
		Location:     loc.Name,
		Region:       loc.Region,
		Jurisdiction: loc.Jurisdiction,
		Tier:         tier.Name,
		TierLevel:    tier.Level,
		RPO:          tier.RPO,
		RTO:          tier.RTO,
		Replicas:     append([]string{}, ds.Replicas...),
		Replication:  string(tier.Replication),
		Label:        a.Labels.Dataset(ds.Name),
	}, nil
}

// lookup finds a dataset and one of its locations (its primary when location is empty).
func (a *Activities) lookup(dataset, location string) (config.Dataset, config.Location, error) {
	if a.Config == nil {
		return config.Dataset{}, config.Location{}, nonRetryable(ErrTypeNotServed, "this worker has no configuration")
	}
	ds, ok := a.Config.Dataset(dataset)
	if !ok {
		return config.Dataset{}, config.Location{}, nonRetryable(ErrTypeNotFound, "dataset %q is not configured", dataset)
	}
	if location == "" {
		location = ds.Primary
	}
	if location != ds.Primary && !slices.Contains(ds.Replicas, location) {
		return ds, config.Location{}, nonRetryable(ErrTypeInvalidInput, "location %q holds no copy of dataset %s", location, ds.Name)
	}
	loc, ok := a.Config.Location(location)
	if !ok {
		return ds, config.Location{}, nonRetryable(ErrTypeNotFound, "location %q is not configured", location)
	}
	return ds, loc, nil
}
