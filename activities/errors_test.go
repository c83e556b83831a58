package activities

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/drflow/drflow/internal/keys"
	"github.com/drflow/drflow/internal/repo"
	"github.com/drflow/drflow/providers"
)

func TestClassifyFollowsRepoTable(t *testing.T) {
	// A final error becomes a non-retryable application error of the table's type.
	err := classify(fmt.Errorf("unwrap: %w", keys.ErrRevoked))
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, ErrTypeKeyRevoked, appErr.Type())
	assert.True(t, appErr.NonRetryable())
	assert.Contains(t, NonRetryableErrorTypes(), appErr.Type())

	// An integrity failure loses the entry path (customer data) on its way into history.
	err = classify(&repo.IntegrityError{Entry: "payroll/2026.csv", Chunk: keys.ChunkID{1}, Pack: "ab12", Reason: "authentication failed"})
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, ErrTypeIntegrityFailure, appErr.Type())
	assert.NotContains(t, appErr.Error(), "payroll")
	assert.Contains(t, appErr.Error(), "in pack ab12: authentication failed")

	// A retryable error passes through unchanged, for the retry policy.
	transient := fmt.Errorf("put: %w", providers.ErrPermission)
	assert.Same(t, transient, classify(transient))
	assert.Equal(t, "storage: "+providers.ErrPermission.Error(), errorClass(transient))

	// An application error already typed keeps its type, in classify and in logs.
	typed := nonRetryable(ErrTypeNotServed, "no store")
	assert.Same(t, typed, classify(typed))
	assert.Equal(t, ErrTypeNotServed, errorClass(typed))
	assert.Nil(t, classify(nil))
	assert.Equal(t, repo.ClassifyError(errors.New("x")).Name, errorClass(errors.New("x")))
}
