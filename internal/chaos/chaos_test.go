package chaos

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPlanFromEnvironment(t *testing.T) {
	t.Setenv(EnvFull, "")
	t.Setenv(EnvSeed, "")
	t.Setenv(EnvTrials, "")
	p := PlanFor(t, "crash", 3, 20)
	assert.Equal(t, Plan{Family: "crash", Seed: 1, Trials: 3}, p)

	t.Setenv(EnvFull, "1")
	t.Setenv(EnvSeed, "42")
	assert.Equal(t, Plan{Family: "crash", Seed: 42, Trials: 20}, PlanFor(t, "crash", 3, 20))
	t.Setenv(EnvTrials, "5")
	assert.Equal(t, 5, PlanFor(t, "crash", 3, 20).Trials)

	// The same seed and trial draw the same numbers; another trial draws others.
	a, b, c := p.Rand(2).Uint64(), p.Rand(2).Uint64(), p.Rand(3).Uint64()
	assert.Equal(t, a, b)
	assert.NotEqual(t, a, c)
}

func TestSummaryLine(t *testing.T) {
	s := Summary{Plan: Plan{Family: "corruption", Seed: 7, Trials: 100}, Completed: 100, Injected: 100, Detected: 100,
		BytesVerified: 3 << 29, Notes: []string{"restores_refused=100"}}
	assert.Equal(t, "chaos corruption: seed=7 trials=100 completed=100 lost=0 corrupt=0 injected=100 detected=100 (100%) verified=1.5GiB restores_refused=100", s.String())
}
