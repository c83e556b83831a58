package runbooks

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// builtinFiles are the runbooks that ship with drflow.
//
//go:embed *.yaml
var builtinFiles embed.FS

// Builtin parses the built-in runbook called name ("legal-hold", "region-failover",
// "ransomware-recovery", "key-revocation-drill", "hold-release").
func Builtin(name string) (Runbook, error) {
	data, err := builtinFiles.ReadFile(name + ".yaml")
	if err != nil {
		return Runbook{}, fmt.Errorf("no built-in runbook %q (built-in: %s)", name, strings.Join(BuiltinNames(), ", "))
	}
	rb, err := Parse(data)
	if err != nil {
		return Runbook{}, fmt.Errorf("built-in runbook %s: %w", name, err)
	}
	return rb, nil
}

// BuiltinNames lists the built-in runbooks, sorted.
func BuiltinNames() []string {
	entries, _ := fs.Glob(builtinFiles, "*.yaml")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e, ".yaml"))
	}
	sort.Strings(names)
	return names
}
