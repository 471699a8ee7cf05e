package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// InsertNodes writes node records as they are, in chunks: for seeding and imports (benchmarks, a move
// from another system). It bypasses claims, so it is never used while deployments run on those nodes.
// A record that exists already is an error; the others in its chunk are still written.
func (s *Store) InsertNodes(ctx context.Context, nodes []Node) error {
	defer s.cache.clear()
	const chunk = 1000
	for start := 0; start < len(nodes); start += chunk {
		batch := nodes[start:min(start+chunk, len(nodes))]
		docs := make([]any, len(batch))
		for i := range batch {
			if batch[i].ID == "" {
				batch[i].ID = NodeID(batch[i].Service, batch[i].Host)
			}
			docs[i] = batch[i]
		}
		if _, err := s.nodes.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
			return fmt.Errorf("insert nodes %d-%d: %w", start, start+len(batch)-1, err)
		}
	}
	return nil
}
