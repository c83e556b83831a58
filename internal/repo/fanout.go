package repo

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// forEach calls fn for every item on workers goroutines and returns the first error; the
// context fn gets is cancelled once any call fails, and no new item is handed out then.
func forEach[T any](ctx context.Context, items []T, workers int, fn func(ctx context.Context, item T) error) error {
	next := make(chan T)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(next)
		for _, it := range items {
			select {
			case next <- it:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range max(1, workers) {
		g.Go(func() error {
			for it := range next {
				if err := fn(gctx, it); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}
