package store

import (
	"sync"
	"sync/atomic"
)

// nodeCache keeps node records in memory for reads, when this process is the only writer of the nodes
// collection: the embedded database serves this process alone. Every write of a node goes through the
// Store while it holds the node's stripe lock, and forgets the cached record before letting go; a read
// that misses fills the cache under the same lock. So a cached record is always the stored one.
// With an external MongoDB other replicas may write, and there is no cache.
type nodeCache struct {
	m    sync.Map // node id -> Node
	size atomic.Int64
}

// maxCachedNodes bounds the memory the cache takes (about 300 bytes a record); past it, reads of
// records not cached go to the database.
const maxCachedNodes = 200_000

func (c *nodeCache) get(id string) (Node, bool) {
	if c == nil {
		return Node{}, false
	}
	v, ok := c.m.Load(id)
	if !ok {
		return Node{}, false
	}
	return v.(Node), true
}

func (c *nodeCache) put(n Node) {
	if c == nil || c.size.Load() >= maxCachedNodes {
		return
	}
	if _, loaded := c.m.Swap(n.ID, n); !loaded {
		c.size.Add(1)
	}
}

func (c *nodeCache) forget(id string) {
	if c == nil {
		return
	}
	if _, loaded := c.m.LoadAndDelete(id); loaded {
		c.size.Add(-1)
	}
}

func (c *nodeCache) clear() {
	if c == nil {
		return
	}
	c.m.Range(func(k, _ any) bool {
		c.forget(k.(string))
		return true
	})
}
