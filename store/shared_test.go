package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
)

// sharedStoreEnv, when set to a PostgreSQL URL (make e2e sets it from hack/pg env), runs this package's
// store tests on it, through a FerretDB front end, instead of on the embedded database.
const sharedStoreEnv = "NODEEXEC_TEST_STORE_PG_URL"

// openSharedTestStore is a store in a database of the test's own (a schema, dropped at the end) on the
// shared PostgreSQL at pgURL, behind a front end of the test's own, opened as a replica opens it: with
// --mongo-uri, so no node cache.
func openSharedTestStore(t testing.TB, pgURL string) *Store {
	t.Helper()
	ctx := context.Background()
	fe, err := StartFrontend(ctx, pgURL, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fe.Stop)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	s, err := Open(ctx, fe.URI, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.client.Database(name).Drop(context.Background())
		_ = s.Close(context.Background())
	})
	return s
}

func sharedTestURL() string { return os.Getenv(sharedStoreEnv) }
