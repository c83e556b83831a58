package keys

import (
	"context"

	"github.com/drflow/drflow/providers"
)

// DataKeys gives the backup engine the data keys of a dataset. Wrapped DEKs live in the
// repository store itself (next to the chunks they encrypt), so a copy of a restore point in
// another location carries what is needed to restore it — once the home KEK unwraps it.
type DataKeys interface {
	// Current returns the dataset's newest key epoch in st, creating epoch 1 (a fresh DEK,
	// wrapped by the home KEK and written with a conditional create) if the dataset has none.
	Current(ctx context.Context, st providers.Store, dataset string) (*DataKey, error)
	// Epoch returns an existing epoch's key. ErrRevoked if its KEK is revoked, ErrDestroyed
	// if the dataset was shredded, providers.ErrNotFound if the epoch never existed.
	Epoch(ctx context.Context, st providers.Store, dataset string, epoch uint32) (*DataKey, error)
}
