package workflows

import (
	"fmt"
	"strings"
	"time"
)

// The Web UI shows a workflow's current details (workflow.SetCurrentDetails, Markdown) on its
// page, so an SRE reads a run's figures there without opening the result JSON. They carry the
// same names and figures as the result: no customer data.

func backupDetails(r BackupResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Backup of %s** (tier %d): restore point `%s`\n\n", r.Dataset, r.Tier, r.RestorePoint)
	b.WriteString("| figure | measured | objective | |\n|---|---|---|---|\n")
	if r.RPOKnown {
		fmt.Fprintf(&b, "| RPO exposure | %s | %s | %s |\n", seconds(r.RPOSeconds), seconds(r.RPOObjectiveSeconds), metMark(r.RPOMet))
	} else {
		fmt.Fprintf(&b, "| RPO exposure | unknown (first restore point) | %s | not met |\n", seconds(r.RPOObjectiveSeconds))
	}
	fmt.Fprintf(&b, "\nRead %d bytes, uploaded %d (%d new chunks, %d reused).", r.BytesRead, r.BytesUploaded, r.ChunksNew, r.ChunksReused)
	if r.FilesUnchanged > 0 {
		fmt.Fprintf(&b, " %d files (%d bytes) unchanged since the previous restore point, not read.", r.FilesUnchanged, r.BytesUnchanged)
	}
	for _, rep := range r.Replicas {
		fmt.Fprintf(&b, "\n- replica %s: %s", rep.Location, rep.Status)
		if rep.Mode != "" {
			fmt.Fprintf(&b, " (%s, %d bytes)", rep.Mode, rep.BytesCopied)
		}
	}
	return b.String()
}

func drillDetails(r DrillResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Restore drill of %s** (tier %d): restore point `%s` from %s into a scratch %s\n\n",
		r.Dataset, r.Tier, r.RestorePoint, r.Location, r.Target)
	b.WriteString("| figure | measured | objective | |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| RTO | %s | %s | %s |\n", seconds(r.RTOSeconds), seconds(r.RTOObjectiveSeconds), metMark(r.RTOMet))
	fmt.Fprintf(&b, "| RPO | %s | %s | %s |\n", seconds(r.RPOSeconds), seconds(r.RPOObjectiveSeconds), metMark(r.RPOMet))
	verified := "verified"
	if !r.Verified {
		verified = "NOT verified"
	}
	fmt.Fprintf(&b, "\nRestored %d bytes, %s.", r.BytesRestored, verified)
	return b.String()
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

func metMark(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}
