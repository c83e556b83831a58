package activities

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/drflow/drflow/internal/repo"
)

func TestProgressOf(t *testing.T) {
	tests := []struct {
		name    string
		give    repo.Progress
		elapsed time.Duration
		want    Progress
	}{
		{"unknown total", repo.Progress{Phase: repo.PhaseBackup, BytesDone: 10, BytesTotal: -1}, time.Second,
			Progress{Phase: "backup", BytesDone: 10, BytesTotal: -1, ETASeconds: -1}},
		{"nothing done yet", repo.Progress{Phase: repo.PhaseRestore, BytesTotal: 100}, time.Second,
			Progress{Phase: "restore", BytesTotal: 100, ETASeconds: -1}},
		{"quarter done in 10s", repo.Progress{Phase: repo.PhaseRestore, BytesDone: 25, BytesTotal: 100}, 10 * time.Second,
			Progress{Phase: "restore", BytesDone: 25, BytesTotal: 100, ETASeconds: 30}},
		{"done", repo.Progress{Phase: repo.PhaseDone, BytesDone: 100, BytesTotal: 100}, time.Second,
			Progress{Phase: "done", BytesDone: 100, BytesTotal: 100, ETASeconds: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, progressOf(tt.give, tt.elapsed))
		})
	}
}
