package client_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
)

// The Plan Layer's release of one batch: pick the platform, deploy the batch, wait for its end, roll
// back automatically when it failed, then read the status. Here against the real server and the
// embedded database, with a stand-in executor whose health check fails v2 on 10.0.0.3 (that node goes
// back to v1 by itself; the rollback takes the two it moved back too).
func Example_planLayer() {
	nodes := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
	ts, err := startServer(&fleetExecutor{fail: map[string]string{"v2": "10.0.0.3"}})
	if err != nil {
		log.Fatal(err)
	}
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.New(ts.URL) // a server with tokens: client.New(url, client.WithToken(token))
	if err != nil {
		log.Fatal(err)
	}
	release := func(version string) api.DeployRequest {
		return api.DeployRequest{Service: "web", Version: version, Platform: api.PlatformPhysical, Nodes: nodes,
			PackageURL: "https://pkgs.example/web-" + version + ".tgz", SHA256: strings.Repeat("ab", 32),
			Health: &api.HealthCheck{HTTPPort: 8080, HTTPPath: "/health"}}
	}
	if _, err := deployAndWait(ctx, c, release("v1")); err != nil { // what runs before this release
		log.Fatal(err)
	}

	// The Plan Layer's batch.
	d, err := deployAndWait(ctx, c, release("v2"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deploy v2:", d.State)
	if d.State == api.StateFailed {
		rb, err := c.Rollback(ctx, d.ID, api.RollbackRequest{RequestedBy: "plan-layer"})
		if err != nil {
			log.Fatal(err)
		}
		back, err := c.Wait(ctx, rb.ID)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("rollback:", back.State)
	}
	info, err := c.Info(ctx, d.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status of", info.DeploymentID == d.ID, info.Status)
	for _, n := range mustNodes(c.Nodes(ctx, "web")) {
		fmt.Println(n.Host, n.State, n.CurrentVersion)
	}
	// Output:
	// deploy v2: failed
	// rollback: rolled_back
	// status of true failed
	// 10.0.0.1 rolled_back v1
	// 10.0.0.2 rolled_back v1
	// 10.0.0.3 rolled_back v1
}

// deployAndWait deploys and follows the deployment to its end. A deploy refused for a transient fault
// (the server drains, its database blinked) was already retried by the client with the same
// idempotency key; a node held by another deployment is the Plan Layer's to schedule later.
func deployAndWait(ctx context.Context, c *client.Client, req api.DeployRequest) (*api.Deployment, error) {
	acc, err := c.Deploy(ctx, req)
	if holder, busy := client.Holder(err); busy {
		return nil, fmt.Errorf("a node is held by deployment %s: try this batch later", holder)
	}
	if err != nil {
		return nil, err
	}
	return c.Wait(ctx, acc.ID)
}

func mustNodes(ns []api.Node, err error) []api.Node {
	if err != nil {
		log.Fatal(err)
	}
	return ns
}
