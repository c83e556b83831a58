package testservers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildMu  sync.Mutex
	builtDir string
	built    = map[string]string{}
)

// GoBinary builds the main package at pkg (a path relative to the repository root, such as
// "./worker") once per test process and returns the binary's path. Tests that run drflow as
// real processes (killed, restarted, one per region) use it.
func GoBinary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	if builtDir == "" {
		dir, err := os.MkdirTemp("", "drflow-test-bin-")
		if err != nil {
			t.Fatalf("binary directory: %v", err)
		}
		builtDir = dir
	}
	name := strings.Trim(strings.ReplaceAll(filepath.Clean(pkg), string(filepath.Separator), "-"), ".-")
	bin := filepath.Join(builtDir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}
