package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParentPath(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{"datasets[0] (customers).source.path", "datasets[0] (customers).source"},
		{"datasets[0] (customers).source", "datasets[0] (customers)"},
		{"datasets[0] (customers)", "datasets"},
		{"datasets[0] (my.data).replicas[1]", "datasets[0] (my.data).replicas"},
		{"datasets[0] (my.data).replicas", "datasets[0] (my.data)"},
		{"datasets[0] (my.data)", "datasets"},
		{"datasets[3]", "datasets"},
		{"datasets", ""},
		{"", ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, parentPath(tt.give), tt.give)
	}
}

func TestItemPathAnnotatesOnlySafeNames(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{"customers", "datasets[2] (customers)"},
		{"EU", "datasets[2] (EU)"},
		{"my.data", "datasets[2] (my.data)"},
		{"", "datasets[2]"},
		{"two words", "datasets[2]"},
		{"x) (y", "datasets[2]"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, itemPath("datasets", 2, tt.give), tt.give)
	}
}
