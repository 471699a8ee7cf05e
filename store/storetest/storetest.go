// Package storetest gives a test its own store on a real (embedded FerretDB) database, stopped and
// removed when the test ends.
package storetest

import (
	"context"
	"testing"

	"github.com/nodeexec/nodeexec/store"
)

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
	st, err := Database(t).Open(context.Background(), "nodeexec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}
