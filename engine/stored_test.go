package engine

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// Each kind of deployment is recorded as a document tagged with its kind: its own request under its
// kind's name, no other kind's, and none of the old form's "request" and "replicas"; read back, the
// request is the one recorded.
func TestEachKindIsRecordedAsItsOwnTaggedDocument(t *testing.T) {
	ctx := context.Background()
	db := storetest.Database(t)
	records, err := db.Open(ctx, "nodeexec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = records.Close(context.Background()) })
	client, err := mongo.Connect(options.Client().ApplyURI(db.URI))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	raw := client.Database("nodeexec").Collection("deployments")

	hc := executor.HealthCheck{HTTPPort: 8080, HTTPPath: "/health"}
	deploy := Deploy(executor.DeployRequest{
		DeploymentID: "d-1",
		Service:      "demo",
		Version:      "v2",
		PhysicalDeploy: executor.PhysicalDeploy{Health: hc, Nodes: []executor.Node{{Host: "h1", Address: "10.0.0.1"}, {Host: "h2"}},
			Package: executor.Package{URL: "http://p/demo.tgz", SHA256: "ab"}},
	}, executor.PlatformPhysical, store.Batch{Size: 1})
	deploy.Nodes[0].FromVersion, deploy.Nodes[0].CurrentVersion = "v1", "v2"
	rollback, err := RollbackOf(deploy, "d-2")
	if err != nil {
		t.Fatal(err)
	}
	scale := Scale("d-3", "web", []executor.Workload{{Namespace: "prod", Kind: "Deployment", Name: "web"}}, 3)
	restart := Restart(executor.RestartRequest{DeploymentID: "d-4", Service: "demo", Nodes: []executor.Node{{Host: "h1"}}, Health: hc}, store.Batch{})

	tags := []string{store.KindDeploy, store.KindRollback, store.KindScale, store.KindRestart}
	requestOf := func(d *store.Deployment) []any { return []any{d.Deploy, d.Rollback, d.Scale, d.Restart} }
	for _, d := range []*store.Deployment{deploy, rollback, scale, restart} {
		t.Run(d.Kind, func(t *testing.T) {
			if _, _, err := records.CreateDeployment(ctx, d); err != nil {
				t.Fatal(err)
			}
			var doc bson.M
			if err := raw.FindOne(ctx, bson.M{"_id": d.ID}).Decode(&doc); err != nil {
				t.Fatal(err)
			}
			for _, key := range append(slices.Clone(tags), "request", "replicas") {
				_, has := doc[key]
				if want := key == d.Kind; has != want {
					t.Errorf("the document of a %s has %q: %v, want %v (document: %v)", d.Kind, key, has, want, doc)
				}
			}
			if _, ok := doc[d.Kind].(bson.D); !ok {
				t.Errorf("%q is not a sub-document: %T", d.Kind, doc[d.Kind])
			}
			got, err := records.Deployment(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(requestOf(got), requestOf(d)) {
				t.Errorf("read back %+v, recorded %+v", requestOf(got), requestOf(d))
			}
		})
	}
	stored, err := raw.FindOne(ctx, bson.M{"_id": "d-3"}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	if replicas, ok := stored.Lookup("scale", "replicas").Int32OK(); !ok || replicas != 3 {
		t.Errorf("a scale's replicas are stored in its scale request: %v", stored)
	}
	// A request's platform part is stored flat, under the field names documents have always had.
	for id, paths := range map[string][][]string{
		"d-1": {{"deploy", "nodes"}, {"deploy", "package", "url"}, {"deploy", "health"}},
		"d-2": {{"rollback", "nodes"}, {"rollback", "health"}},
	} {
		doc, err := raw.FindOne(ctx, bson.M{"_id": id}).Raw()
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range paths {
			if _, err := doc.LookupErr(path...); err != nil {
				t.Errorf("%s has no %v: %v", id, path, doc)
			}
		}
		kind, _ := doc.Lookup("kind").StringValueOK()
		for _, nested := range []string{"physicaldeploy", "k8sdeploy", "physicalrollback", "k8srollback"} {
			if _, err := doc.LookupErr(kind, nested); err == nil {
				t.Errorf("%s nests its platform part under %q: %v", id, nested, doc)
			}
		}
	}
}
