package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/nodeexec/nodeexec/executor"
)

// The inventory: every node nodeexec knows, by service, and forgetting one that is gone.

// NodeFilter picks node records; empty fields pick all. Limit is the page size; Cursor the last node of
// the previous page, as ListNodes returned it.
type NodeFilter struct {
	Service string
	Version string
	State   executor.State
	// Drifted picks only the nodes whose record has a drift (the last drift pass found one).
	Drifted bool
	Limit   int
	Cursor  string
}

// ListNodes returns node records in key order (service, then host), one page at a time; next is "" on
// the last page.
func (s *Store) ListNodes(ctx context.Context, f NodeFilter) (page []Node, next string, err error) {
	filter := bson.M{}
	if f.Service != "" {
		filter["service"] = f.Service
	}
	if f.Version != "" {
		filter["current_version"] = f.Version
	}
	if f.State != "" {
		filter["state"] = f.State
	}
	if f.Drifted {
		filter["drift"] = bson.M{"$exists": true}
	}
	if f.Cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		if err != nil || len(after) == 0 {
			return nil, "", ErrBadCursor
		}
		filter["_id"] = bson.M{"$gt": string(after)}
	}
	cur, err := s.nodes.Find(ctx, filter, options.Find().SetSort(bson.M{"_id": 1}).SetLimit(int64(f.Limit)+1))
	if err != nil {
		return nil, "", fmt.Errorf("list nodes: %w", err)
	}
	page = []Node{}
	if err := cur.All(ctx, &page); err != nil {
		return nil, "", fmt.Errorf("list nodes: %w", err)
	}
	if len(page) > f.Limit {
		page = page[:f.Limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1].ID))
	}
	return page, next, nil
}

// ServiceSummary is one service of the inventory: its nodes, which versions they run, and how many
// failed or are held by a deployment or a pass now.
type ServiceSummary struct {
	Service   string
	Platform  executor.Platform
	Nodes     int
	Versions  []VersionHosts
	Failed    int
	Deploying int
}

// VersionHosts are the nodes of a service that run one version ("" : none yet, or none any more).
type VersionHosts struct {
	Version string
	Hosts   []string
}

// Services summarizes every service with a node record, by name (a scan of the node records).
func (s *Store) Services(ctx context.Context) ([]ServiceSummary, error) {
	opts := options.Find().SetSort(bson.M{"_id": 1}).
		SetProjection(bson.M{"service": 1, "host": 1, "platform": 1, "current_version": 1, "state": 1})
	cur, err := s.nodes.Find(ctx, bson.M{}, opts)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	var nodes []Node
	if err := cur.All(ctx, &nodes); err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := []ServiceSummary{}
	at := map[string]int{}
	versions := map[string]map[string][]string{}
	for _, n := range nodes {
		i, ok := at[n.Service]
		if !ok {
			i = len(out)
			at[n.Service] = i
			out = append(out, ServiceSummary{Service: n.Service, Platform: n.Platform})
			versions[n.Service] = map[string][]string{}
		}
		sum := &out[i]
		sum.Nodes++
		switch n.State {
		case executor.StateFailed:
			sum.Failed++
		case executor.StateDeploying, executor.StatePending:
			sum.Deploying++
		}
		versions[n.Service][n.CurrentVersion] = append(versions[n.Service][n.CurrentVersion], n.Host)
	}
	for i := range out {
		byVersion := versions[out[i].Service]
		for v, hosts := range byVersion {
			out[i].Versions = append(out[i].Versions, VersionHosts{Version: v, Hosts: hosts})
		}
		// Most nodes first: the version a service runs reads first, stragglers after.
		sort.Slice(out[i].Versions, func(a, b int) bool {
			va, vb := out[i].Versions[a], out[i].Versions[b]
			if len(va.Hosts) != len(vb.Hosts) {
				return len(va.Hosts) > len(vb.Hosts)
			}
			return va.Version < vb.Version
		})
	}
	return out, nil
}

// ForgetNode removes a node's record, unless a deployment or a pass holds it (a *BusyError naming the
// holder), and returns the record as it was. A node that is forgotten is no longer listed, cleaned up
// or read by any pass; a later deploy to it records it anew.
func (s *Store) ForgetNode(ctx context.Context, service, host string) (*Node, error) {
	id := NodeID(service, host)
	if _, err := s.readNode(ctx, id); err != nil {
		return nil, err // not there: nothing to hold
	}
	release, err := s.holdBriefly(ctx, id, host, "forget")
	if err != nil {
		return nil, err
	}
	defer release()
	defer s.lockNode(id)()
	defer s.writing(id)
	var n Node
	held := bson.A{executor.StateDeploying, executor.StatePending}
	err = s.nodes.FindOneAndDelete(ctx, bson.M{"_id": id, "state": bson.M{"$nin": held}}).Decode(&n)
	if err == nil {
		return &n, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("forget %s: %w", id, err)
	}
	if err := s.nodes.FindOne(ctx, bson.M{"_id": id}).Decode(&n); errors.Is(err, mongo.ErrNoDocuments) {
		return nil, notFound("node %s of service %s", host, service)
	} else if err != nil {
		return nil, fmt.Errorf("forget %s: %w", id, err)
	}
	return nil, &BusyError{Node: host, DeploymentID: n.DeploymentID}
}
