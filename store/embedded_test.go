package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FerretDB looks up _id with WHERE _ferretdb_sjson->'$._id' = ? (internal/backends/sqlite/collection.go
// in v1.24): SQLite must answer that from an index, not a scan of every node.
func TestEmbeddedLookupsByIDUseAnIndex(t *testing.T) {
	ctx := context.Background()
	db, err := StartEmbedded(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Stop()
	st, err := db.Open(ctx, "nodeexec")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	conn, err := sql.Open("sqlite", "file:"+filepath.Join(db.dir, "nodeexec.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, coll := range []string{"nodes", "deployments", "events", "idempotency"} {
		var table string
		if err := conn.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = ?`, coll).Scan(&table); err != nil {
			t.Fatalf("%s: %v", coll, err)
		}
		rows, err := conn.Query(fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, table), `"x"`)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if got := strings.Join(plan, "; "); !strings.Contains(got, "USING INDEX "+table+"_nodeexec_id") {
			t.Errorf("%s: lookup by _id is planned as %q", coll, got)
		}
	}
}

// A second server on a data directory already served is refused, naming the process that serves it;
// once that one stops, the directory is free again.
func TestASecondServerOnTheSameDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	first, err := StartEmbedded(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = StartEmbedded(context.Background(), dir)
	if !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second server = %v, want it refused naming pid %d", err, os.Getpid())
	}
	first.Stop()
	again, err := StartEmbedded(context.Background(), dir)
	if err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	again.Stop()
}
