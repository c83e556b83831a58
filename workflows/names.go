package workflows

// Task queues. Workflows run on the control queue; activities that touch data run on the
// queue of the region that owns the data, which only workers holding that region's
// credentials poll.
const (
	// ControlTaskQueue is where every drflow workflow runs. Workflow code touches no data, so
	// any worker may serve it.
	ControlTaskQueue = "drflow"

	regionTaskQueuePrefix = ControlTaskQueue + "-"
)

// RegionTaskQueue returns the task queue of the data-plane workers of region. Region names are
// validated by config (lower-case letters, digits and '-'), so the result is a valid task
// queue name and distinct regions get distinct queues.
func RegionTaskQueue(region string) string {
	return regionTaskQueuePrefix + region
}

// Workflow IDs have stable, human-readable prefixes so that schedules, the CLI and people in
// the Web UI can find a dataset's runs ("drflow-backup-orders"). A fixed ID per dataset also
// makes Temporal refuse a second concurrent run of the same kind for the same dataset.
//
// Runs started by a Temporal Schedule get the schedule's suffix appended by the server: the
// action's workflow ID, "-", and the scheduled time in RFC 3339 (for example
// "drflow-backup-orders-2025-01-02T03:04:05Z"), so each scheduled run has its own ID. Search
// by the DrDataset and DrKind search attributes rather than by ID prefix: one dataset's name
// can be a prefix of another's ("orders" and "orders-eu").
const (
	backupIDPrefix    = "drflow-backup-"
	drillIDPrefix     = "drflow-drill-"
	replicateIDPrefix = "drflow-replicate-"
	retentionIDPrefix = "drflow-retention-"

	// idSeparator joins the parts of a multi-part ID. Dataset and location names and
	// restore point IDs cannot contain it, so distinct parts never give the same ID.
	idSeparator = ":"
)

// BackupWorkflowID returns the ID of the backup workflow of dataset, and the action ID of its
// backup schedule.
func BackupWorkflowID(dataset string) string { return backupIDPrefix + dataset }

// DrillWorkflowID returns the ID of the restore drill of dataset. At most one drill of a
// dataset runs at a time; a finished drill's ID can be reused by the next one.
func DrillWorkflowID(dataset string) string { return drillIDPrefix + dataset }

// ReplicateWorkflowID returns the ID of the workflow that copies one restore point of dataset
// to one location. Copying the same point to the same place twice is one workflow, so a
// retried parent does not start a duplicate copy.
func ReplicateWorkflowID(dataset, point, location string) string {
	return replicateIDPrefix + dataset + idSeparator + point + idSeparator + location
}

// RetentionWorkflowID returns the ID of the retention (prune and garbage-collect) workflow of
// dataset.
func RetentionWorkflowID(dataset string) string { return retentionIDPrefix + dataset }
