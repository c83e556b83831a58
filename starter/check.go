package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/stores"
)

func configValidate(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "config validate")
	path := fs.String("config", defaultConf, "configuration file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s is valid: %d jurisdictions, %d locations, %d keys, %d policies, %d tiers, %d datasets\n",
		*path, len(cfg.Jurisdictions), len(cfg.Locations), len(cfg.KEKs), len(cfg.Policies), len(cfg.Tiers), len(cfg.Datasets))
	return nil
}

// locationReport is one row of "locations check", also its JSON form.
type locationReport struct {
	Name              string   `json:"name"`
	Provider          string   `json:"provider"`
	Region            string   `json:"region"`
	Jurisdiction      string   `json:"jurisdiction"`
	ObjectLock        bool     `json:"object_lock_configured"`
	LegalHold         bool     `json:"legal_hold"`
	Retention         bool     `json:"retention"`
	RetentionModes    []string `json:"retention_modes"`
	ConditionalCreate bool     `json:"conditional_create"`
	ServerEnforced    bool     `json:"server_enforced"`
	Note              string   `json:"note,omitempty"`
	Error             string   `json:"error,omitempty"`
}

func locationsCheck(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "locations check")
	path := fs.String("config", defaultConf, "configuration file")
	asJSON := fs.Bool("json", false, "print the reports as JSON")
	timeout := fs.Duration("timeout", 30*time.Second, "time allowed to open each location")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}

	reports := make([]locationReport, 0, len(cfg.Locations))
	var failed []string
	for _, loc := range cfg.Locations {
		r := checkLocation(ctx, loc, *timeout)
		if r.Error != "" {
			failed = append(failed, loc.Name)
		}
		reports = append(reports, r)
	}

	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(reports); err != nil {
			return err
		}
	} else {
		printReports(e, reports)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d locations failed the check: %s", len(failed), len(reports), strings.Join(failed, ", "))
	}
	return nil
}

func checkLocation(ctx context.Context, loc config.Location, timeout time.Duration) locationReport {
	r := locationReport{
		Name: loc.Name, Provider: loc.Provider, Region: loc.Region, Jurisdiction: loc.Jurisdiction,
		ObjectLock: loc.ObjectLock, RetentionModes: []string{},
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := stores.Open(ctx, loc)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	caps := st.Capabilities()
	r.LegalHold, r.Retention, r.ConditionalCreate, r.ServerEnforced = caps.LegalHold, caps.Retention, caps.ConditionalCreate, caps.ServerEnforced
	for _, m := range caps.RetentionModes {
		r.RetentionModes = append(r.RetentionModes, string(m))
	}
	r.Note = caps.Note
	return r
}

func printReports(e *env, reports []locationReport) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCATION\tPROVIDER\tREGION\tJURISDICTION\tHOLD\tRETENTION\tCOND. CREATE\tENFORCED BY\tSTATUS")
	for _, r := range reports {
		status := "ok"
		if r.Error != "" {
			status = "FAILED"
		}
		retention := "no"
		if r.Retention {
			retention = strings.Join(r.RetentionModes, "+")
		}
		enforcedBy := "-"
		if r.LegalHold || r.Retention {
			enforcedBy = "drflow"
			if r.ServerEnforced {
				enforcedBy = "server"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Provider, r.Region, r.Jurisdiction,
			yesNo(r.LegalHold), retention, yesNo(r.ConditionalCreate), enforcedBy, status)
	}
	_ = tw.Flush()
	for _, r := range reports {
		switch {
		case r.Error != "":
			fmt.Fprintf(e.stdout, "\n%s: %s\n", r.Name, r.Error)
		case r.Note != "":
			fmt.Fprintf(e.stdout, "\n%s: %s\n", r.Name, r.Note)
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
