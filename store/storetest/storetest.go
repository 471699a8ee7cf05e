// Package storetest gives a test its own store on a real database, stopped and removed when the test
// ends: the embedded FerretDB, or, when NODEEXEC_TEST_STORE_PG_URL names a PostgreSQL (make e2e), a
// database of the test's own on it behind a FerretDB front end, as replicas share one.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/nodeexec/nodeexec/store"
)

// SharedEnv names the environment variable that puts Open's stores on a shared PostgreSQL.
const SharedEnv = "NODEEXEC_TEST_STORE_PG_URL"

// Database starts an embedded database in the test's temporary directory.
func Database(t testing.TB) *store.Embedded {
	t.Helper()
	db, err := store.StartEmbedded(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Stop)
	return db
}

// Open is a store on a database of the test's own, opened as nodeexec opens it.
func Open(t testing.TB) *store.Store {
	t.Helper()
	if u := os.Getenv(SharedEnv); u != "" {
		return OpenShared(t, u)
	}
	st, err := Database(t).Open(context.Background(), "nodeexec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// OpenReplicas is n stores on one database of the test's own, each with a client of its own, as n
// replicas open it: on a shared PostgreSQL when SharedEnv names one, else on an embedded server reached
// by URI, so that no store takes itself for the database's only user (store.Exclusive).
func OpenReplicas(t testing.TB, n int) []*store.Store {
	t.Helper()
	uri, name := "", "nodeexec"
	if u := os.Getenv(SharedEnv); u != "" {
		uri, name = Frontend(t, u).URI, ScratchName()
		t.Cleanup(func() { DropDatabase(t, uri, name) })
	} else {
		uri = Database(t).URI
	}
	out := make([]*store.Store, n)
	for i := range out {
		st, err := store.Open(context.Background(), uri, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		out[i] = st
	}
	return out
}

// Frontend starts a FerretDB front end of the test's own over the PostgreSQL at pgURL.
func Frontend(t testing.TB, pgURL string) *store.Frontend {
	t.Helper()
	fe, err := store.StartFrontend(context.Background(), pgURL, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fe.Stop)
	return fe
}

// OpenShared is a store in a new database (a PostgreSQL schema, dropped when the test ends) on the
// PostgreSQL at pgURL, through a front end of the test's own, opened as a replica opens it (--mongo-uri).
func OpenShared(t testing.TB, pgURL string) *store.Store {
	t.Helper()
	fe := Frontend(t, pgURL)
	name := ScratchName()
	st, err := store.Open(context.Background(), fe.URI, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = st.Close(context.Background())
		DropDatabase(t, fe.URI, name)
	})
	return st
}

// ScratchName is a database name no other test uses.
func ScratchName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "t_" + hex.EncodeToString(b)
}

// DropDatabase removes a test's database from the server at uri (for a cleanup: it only logs failures).
func DropDatabase(t testing.TB, uri, name string) {
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Logf("drop database %s: %v", name, err)
		return
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	if err := c.Database(name).Drop(context.Background()); err != nil {
		t.Logf("drop database %s: %v", name, err)
	}
}
