package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
)

// landed claims and finishes a node of service on version, as a deployment that succeeded does.
func landed(t *testing.T, s *Store, service, host, version string) {
	t.Helper()
	ctx := context.Background()
	id := "d-" + service + "-" + host + "-" + version
	if _, err := s.Claim(ctx, service, host, executor.PlatformPhysical, id, version); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(ctx, id, executor.NodeStatus{Service: service, Host: host, CurrentVersion: version, State: executor.StateSuccess}); err != nil {
		t.Fatal(err)
	}
}

// The inventory lists every node, in pages, filtered; summarizes each service's versions; and forgets
// a node unless something holds it.
func TestInventoryListsSummarizesAndForgets(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	landed(t, s, "api", "10.0.0.1", "v2")
	landed(t, s, "api", "10.0.0.2", "v2")
	landed(t, s, "api", "10.0.0.3", "v1")
	landed(t, s, "web", "10.0.0.1", "v7")
	if _, err := s.Claim(ctx, "web", "10.0.0.9", executor.PlatformPhysical, "d-held", "v8"); err != nil {
		t.Fatal(err)
	}

	var all []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, next, err := s.ListNodes(ctx, NodeFilter{Limit: 2, Cursor: cursor})
		if err != nil || pages > 3 {
			t.Fatalf("page %d: %v", pages, err)
		}
		for _, n := range page {
			all = append(all, n.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if got := fmt.Sprint(all); got != "[api/10.0.0.1 api/10.0.0.2 api/10.0.0.3 web/10.0.0.1 web/10.0.0.9]" {
		t.Errorf("all nodes = %s", got)
	}
	if page, _, err := s.ListNodes(ctx, NodeFilter{Service: "api", Version: "v2", Limit: 10}); err != nil || len(page) != 2 {
		t.Errorf("api on v2 = %v, %v", page, err)
	}
	if page, _, _ := s.ListNodes(ctx, NodeFilter{State: executor.StateDeploying, Limit: 10}); len(page) != 1 || page[0].Host != "10.0.0.9" {
		t.Errorf("deploying = %v", page)
	}
	if _, _, err := s.ListNodes(ctx, NodeFilter{Limit: 2, Cursor: "!!"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("a bad cursor = %v", err)
	}

	services, err := s.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%+v", services); got != "[{Service:api Platform:physical Nodes:3 Versions:[{Version:v2 Hosts:[10.0.0.1 10.0.0.2]} {Version:v1 Hosts:[10.0.0.3]}] Failed:0 Deploying:0} "+
		"{Service:web Platform:physical Nodes:2 Versions:[{Version: Hosts:[10.0.0.9]} {Version:v7 Hosts:[10.0.0.1]}] Failed:0 Deploying:1}]" {
		t.Errorf("services = %s", got)
	}

	var busy *BusyError
	if _, err := s.ForgetNode(ctx, "web", "10.0.0.9"); !errors.As(err, &busy) || busy.DeploymentID != "d-held" {
		t.Errorf("forget a held node = %v", err)
	}
	if _, err := s.ForgetNode(ctx, "web", "10.9.9.9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("forget an unknown node = %v", err)
	}
	n, err := s.ForgetNode(ctx, "api", "10.0.0.3")
	if err != nil || n.CurrentVersion != "v1" {
		t.Fatalf("forget = %+v, %v", n, err)
	}
	if _, err := s.Node(ctx, "api", "10.0.0.3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("read after forget = %v", err)
	}
	if page, _, _ := s.ListNodes(ctx, NodeFilter{Service: "api", Limit: 10}); len(page) != 2 {
		t.Errorf("api after forget = %v", page)
	}
}
