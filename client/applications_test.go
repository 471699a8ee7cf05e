package client_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
)

// Several applications through the client: one Deploy, one Wait, each application's deployment and
// nodes under the deployment of several; a mistake in one application is an *Error naming its place.
func TestDeployOfSeveralApplicationsThroughTheClient(t *testing.T) {
	ts := serve(t, &fleetExecutor{})
	c, ctx := newClient(t, ts.URL), testCtx(t)
	web, jobs := request("v2", "10.0.0.1"), request("v5", "10.0.0.1", "10.0.0.2")
	apps := []api.Application{
		{Service: "web", Version: web.Version, Nodes: web.Nodes, PackageURL: web.PackageURL, SHA256: web.SHA256, Environment: map[string]string{"MODE": "prod"}},
		{Service: "jobs", Version: jobs.Version, Nodes: jobs.Nodes, PackageURL: jobs.PackageURL, SHA256: jobs.SHA256, Config: map[string]string{"POOL": "4"}},
	}
	acc, err := c.Deploy(ctx, api.DeployRequest{Applications: apps, RequestedBy: "plan"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Wait(ctx, acc.ID)
	if err != nil || d.State != api.StateSuccess || len(d.Applications) != 2 || len(d.Applications[1].Nodes) != 2 {
		t.Fatalf("Wait = %+v, %v", d, err)
	}
	own, err := c.Get(ctx, d.Applications[0].DeploymentID)
	if err != nil || own.ParentID != acc.ID || own.Service != "web" {
		t.Errorf("web's own deployment = %+v, %v", own, err)
	}
	apps[1].SHA256 = "nothex"
	_, err = c.Deploy(ctx, api.DeployRequest{Applications: apps})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 400 || e.Field != "applications[1].sha256" || !strings.Contains(e.Message, "sha256") {
		t.Errorf("a bad application = %v", err)
	}
}
