// Command drflow is the command line that people use to operate drflow: validate a
// configuration, check its storage locations, and (with the workflows) start backups,
// drills, runbooks and holds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
)

// Exit codes, so scripts can tell a bad invocation from a failed check.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	defaultConf = "drflow.yaml"
)

// command is one "drflow NOUN VERB" subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a command may touch: its output streams. Commands never call os.Exit.
type env struct {
	stdout io.Writer
	stderr io.Writer
}

func commands() map[string]command {
	return map[string]command{
		"config validate":  {"load a configuration and report every problem in it", configValidate},
		"locations check":  {"open every location and print what it enforces", locationsCheck},
		"bench":            {"measure backup, restore and verify throughput against the machine's limits", benchCmd},
		"backup":           {"start a backup of a dataset (--wait to follow it and print the RPO)", backupCmd},
		"drill":            {"start a restore drill of a dataset (--wait to follow it and print RPO/RTO)", drillCmd},
		"schedules apply":  {"create, update and delete the Temporal Schedules of every dataset (--dry-run, --paused)", schedulesApplyCmd},
		"schedules list":   {"print every drflow schedule: interval, overlap, state, next and last runs", schedulesListCmd},
		"points":           {"list a dataset's restore points (runs in its home jurisdiction)", pointsCmd},
		"verify":           {"verify a restore point: every chunk authenticated, or a --sample", verifyCmd},
		"restore":          {"restore a restore point into an empty directory or a new PostgreSQL database", restoreCmd},
		"status":           {"newest backup and drill of every dataset against its RPO/RTO objectives", statusCmd},
		"runbook validate": {"check a runbook file (or built-in) against the configuration; errors name line and field", runbookValidateCmd},
		"runbook run":      {"start a runbook (a file or a built-in) with --param k=v (--wait to follow it)", runbookRunCmd},
		"runbook list":     {"the built-in runbooks and the recent runs", runbookListCmd},
		"runbook status":   {"every step of a run: pending, running, waiting for approval (from whom), done, failed, compensated", runbookStatusCmd},
		"runbook approve":  {"vote at an approval gate of a running runbook (--reject --reason to vote against)", runbookApproveCmd},
		"hold place":       {"place a legal hold on restore points on every copy (by --from/--to or --point)", holdPlaceCmd},
		"hold release":     {"release a legal hold once a second person approves", holdReleaseCmd},
		"hold list":        {"the legal holds of a dataset, read from its stores", holdListCmd},
		"hold show":        {"every object of a hold and its hold state per location, read back from the stores", holdShowCmd},
		"codec-key create": {"create the payload keyring that encrypts what drflow sends to Temporal", codecKeyCreateCmd},
		"codec-key rotate": {"add a payload key and make it active; older payloads stay readable", codecKeyRotateCmd},
		"codec-server":     {"serve /NAMESPACE/encode and /decode for the Web UI and the temporal CLI", codecServerCmd},
		"evidence":         {"write an evidence pack for auditors: evidence.json, index.html and the signed audit records", evidenceCmd},
		"audit verify":     {"verify an evidence pack offline with the regions' public keys; names any tampering", auditVerifyCmd},
		"audit key":        {"print a region's audit signing public key (PEM), to hand to auditors", auditKeyCmd},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile(os.Stderr)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile of the command to the file DRFLOW_CPUPROFILE names, if
// set (go tool pprof reads it): for finding where a slow restore or verify spends its time.
func startProfile(stderr io.Writer) func() {
	path := os.Getenv("DRFLOW_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "drflow: DRFLOW_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// errUsage marks a mistake in how drflow was invoked.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		return exitOK
	}
	name := args[0]
	rest := args[1:]
	if len(args) > 1 {
		if _, ok := cmds[args[0]+" "+args[1]]; ok {
			name, rest = args[0]+" "+args[1], args[2:]
		}
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "drflow: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
		usage(stderr, cmds)
		return exitUsage
	}
	if err := cmd.run(ctx, e, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "drflow %s: %v\n", name, err)
		if errors.Is(err, errUsage) {
			return exitUsage
		}
		return exitFailed
	}
	return exitOK
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: drflow COMMAND [flags]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-18s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run drflow COMMAND -h for its flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("drflow "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parseFlags parses args and rejects leftovers, which are almost always a misplaced flag.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (flags go before arguments? see -h)", errUsage, fs.Arg(0))
	}
	return nil
}
