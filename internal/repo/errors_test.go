package repo

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/providers"
)

func TestClassifyError(t *testing.T) {
	for _, tc := range []struct {
		err   error
		name  string
		typ   string
		final bool
	}{
		{fmt.Errorf("fetch: %w", context.Canceled), "cancelled", "", false},
		{fmt.Errorf("fetch: %w", context.DeadlineExceeded), "deadline exceeded", "", false},
		{fmt.Errorf("unwrap: %w", keys.ErrRevoked), keys.ErrRevoked.Error(), TypeKeyRevoked, true},
		{fmt.Errorf("unwrap: %w", keys.ErrDestroyed), keys.ErrDestroyed.Error(), TypeKeyDestroyed, true},
		{&IntegrityError{Entry: "secret/path", Reason: "authentication failed"}, keys.ErrIntegrity.Error(), TypeIntegrityFailure, true},
		{fmt.Errorf("pack: %w", ErrFormat), ErrFormat.Error(), TypeUnsupportedFormat, true},
		{fmt.Errorf("get: %w", providers.ErrNotFound), "storage: " + providers.ErrNotFound.Error(), TypeNotFound, true},
		{fmt.Errorf("put: %w", providers.ErrInvalidArgument), "storage: " + providers.ErrInvalidArgument.Error(), TypeInvalidInput, true},
		{fmt.Errorf("put: %w", providers.ErrImmutable), "storage: " + providers.ErrImmutable.Error(), "", false},
		{fmt.Errorf("put: %w", providers.ErrPermission), "storage: " + providers.ErrPermission.Error(), "", false},
		{errors.New("connection reset for /secret/file"), otherError.Name, "", false},
	} {
		c := ClassifyError(tc.err)
		assert.Equal(t, tc.name, c.Name, "%v", tc.err)
		assert.Equal(t, tc.typ, c.Type, "%v", tc.err)
		assert.Equal(t, tc.final, c.Final(), "%v", tc.err)
		assert.NotContains(t, c.Name, "secret", "a class never carries the message")
	}
	// A cancellation that wraps a storage error is a cancellation: the table's order decides.
	assert.Equal(t, "cancelled", ClassifyError(fmt.Errorf("%w: %w", context.Canceled, providers.ErrNotFound)).Name)
}
