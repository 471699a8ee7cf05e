package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/nodeexec/nodeexec/executor"
)

// flightDeployment is a physical deployment of service to hosts in state, as a run records it.
func flightDeployment(id, service string, state executor.State, hosts ...string) *Deployment {
	d := &Deployment{ID: id, Kind: KindDeploy, Service: service, Version: "v2", Platform: executor.PlatformPhysical,
		State: state, CreatedAt: time.Now().UTC(), Batch: Batch{Size: 1, MaxUnavailable: 2}}
	for _, h := range hosts {
		d.Nodes = append(d.Nodes, DeploymentNode{Host: h, State: state})
	}
	return d
}

func flightIDs(t *testing.T, s *Store, service string) []string {
	t.Helper()
	entries, err := s.FlightOf(context.Background(), service)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.ID)
	}
	return ids
}

// The index of deployments in flight holds what is in flight and nothing else: a deployment enters when
// recorded, leaves when its end is written; a deployment recorded ended never enters.
func TestTheInFlightIndexHoldsWhatIsInFlight(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	for _, d := range []*Deployment{flightDeployment("d-a1", "a", executor.StatePending, "h1", "h2", "h3"),
		flightDeployment("d-b1", "b", executor.StateDeploying, "h1"), flightDeployment("d-a-done", "a", executor.StateSuccess, "h4")} {
		if _, _, err := s.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if got := flightIDs(t, s, "a"); !slices.Equal(got, []string{"d-a1"}) {
		t.Errorf("a in flight = %v, want [d-a1]", got)
	}
	entries, _ := s.FlightOf(ctx, "a")
	if e := entries[0]; e.Width != 1 || e.MaxUnavailable != 2 || e.Platform != executor.PlatformPhysical {
		t.Errorf("entry = %+v; want width 1 (batch size), max_unavailable 2", e)
	}
	if got := flightIDs(t, s, ""); !slices.Equal(got, []string{"d-a1", "d-b1"}) {
		t.Errorf("all in flight = %v", got)
	}
	d, _ := s.Deployment(ctx, "d-a1")
	d.State = executor.StateFailed
	if err := s.UpdateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := flightIDs(t, s, ""); !slices.Equal(got, []string{"d-b1"}) {
		t.Errorf("in flight after d-a1 ended = %v, want [d-b1]", got)
	}
}

// What a crash between the two writes leaves is mended by the next full read: an entry whose deployment
// ended goes, and so does one whose deployment was never written once it is old; a deployment a nodeexec
// from before the index left in flight is indexed at start.
func TestTheInFlightIndexIsMendedAndFilledAtStart(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	ended := flightDeployment("d-ended", "a", executor.StateSuccess, "h1")
	if _, err := s.deployments().InsertOne(ctx, ended); err != nil {
		t.Fatal(err)
	}
	for _, e := range []FlightEntry{{ID: "d-ended", Service: "a", At: time.Now()}, {ID: "d-being-written", Service: "a", At: time.Now()},
		{ID: "d-never-written", Service: "a", At: time.Now().Add(-time.Hour)}} {
		if _, err := s.inFlight().InsertOne(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	before := flightDeployment("d-before-the-index", "a", executor.StateDeploying, "h2")
	if _, err := s.deployments().InsertOne(ctx, before); err != nil {
		t.Fatal(err)
	}
	if err := s.indexInFlight(ctx); err != nil {
		t.Fatal(err)
	}
	flight, err := s.InFlight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(flight) != 1 || flight[0].ID != "d-before-the-index" {
		t.Errorf("InFlight = %v; want only d-before-the-index", flight)
	}
	if got := flightIDs(t, s, "a"); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"d-before-the-index", "d-being-written"}) {
		t.Errorf("the index after InFlight = %v; want the ended and the old orphan gone, the young one kept", got)
	}
}

// BenchmarkDeploymentsInFlight: what an admission reads to count a service's deployments in flight,
// with 300 ended deployments recorded: the index, against the query by state it replaced.
func BenchmarkDeploymentsInFlight(b *testing.B) {
	s := openTestStore(b)
	ctx := context.Background()
	for i := range 300 {
		if _, _, err := s.CreateDeployment(ctx, flightDeployment(fmt.Sprintf("d-%d", i), "demo", executor.StateSuccess, "h1", "h2", "h3")); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.FlightOf(ctx, "demo"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("query-by-state", func(b *testing.B) {
		for b.Loop() {
			cur, err := s.deployments().Find(ctx, bson.M{"service": "demo", "state": bson.M{"$in": bson.A{executor.StatePending, executor.StateDeploying}}})
			if err != nil {
				b.Fatal(err)
			}
			var out []Deployment
			if err := cur.All(ctx, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
