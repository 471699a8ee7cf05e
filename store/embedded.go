package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"golang.org/x/sys/unix"
)

// Embedded is a MongoDB-compatible server running inside this process (FerretDB on SQLite), for when no
// MongoDB URI is configured. It listens on loopback only.
type Embedded struct {
	URI  string
	dir  string
	lock *os.File // held while the server runs: one process per data directory
	stop context.CancelFunc
	done chan struct{}
}

// ErrDataDirInUse is returned when another process serves the embedded database of a data directory.
var ErrDataDirInUse = errors.New("the data directory is in use")

// lockDataDir takes the data directory for this process: two servers on one SQLite store would each
// take the other's deployments for lost. The flock goes with the process, however it ends.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "nodeexec.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("embedded database: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("embedded database: %w: %s is served by another nodeexec (pid %s); stop it, or give this one another --data-dir",
				ErrDataDirInUse, dir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("embedded database: lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// StartEmbedded starts the embedded server with its data under dataDir, on a free loopback port, and
// waits until it listens.
func StartEmbedded(ctx context.Context, dataDir string) (*Embedded, error) {
	return StartEmbeddedAt(ctx, dataDir, "127.0.0.1:0")
}

// StartEmbeddedAt is StartEmbedded on a given loopback address (to start it again where clients expect it).
func StartEmbeddedAt(ctx context.Context, dataDir, addr string) (*Embedded, error) {
	if host, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(host).IsLoopback() {
		return nil, fmt.Errorf("embedded database: %q is not a loopback address", addr)
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded database: data dir: %w", err)
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return nil, err
	}
	// FerretDB logs every wire message at its default level: keep it to warnings and above.
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    quiet,
	})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("embedded database: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e := &Embedded{stop: stop, done: make(chan struct{}), dir: dir, lock: lock}
	go func() {
		defer close(e.done)
		_ = f.Run(runCtx)
	}()
	// MongoDBURI blocks until the listener is up; bound the wait.
	uri := make(chan string, 1)
	go func() { uri <- f.MongoDBURI() }()
	select {
	case e.URI = <-uri:
		return e, nil
	case <-time.After(30 * time.Second):
		e.Stop()
		return nil, errors.New("embedded database did not start listening within 30s")
	}
}

// Open connects a Store to the embedded server, gives its collections the _id index FerretDB's lookups
// can use (see indexIDs), and caches node records for reads, this process being their only writer.
func (e *Embedded) Open(ctx context.Context, database string) (*Store, error) {
	st, err := Open(ctx, e.URI, database)
	if err != nil {
		return nil, err
	}
	if err := e.indexIDs(ctx, database); err != nil {
		_ = st.Close(ctx)
		return nil, err
	}
	// The embedded server listens on loopback for this process alone: its Store is the only writer.
	st.cache = &nodeCache{}
	return st, nil
}

// indexIDs works around FerretDB v1's SQLite handler: it answers an _id equality with
// WHERE _ferretdb_sjson->'$._id' = ?, but builds its own _id index on another expression
// (_ferretdb_sjson->"_id"), which SQLite cannot use for it: every lookup by _id scanned the whole
// table (10,000 nodes: ~100 reads/s). An index on the very expression the query uses makes them
// indexed. It goes straight to the SQLite file, beside FerretDB, once the collections exist; creating
// it again is a no-op.
func (e *Embedded) indexIDs(ctx context.Context, database string) error {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, database+".sqlite")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("embedded database: index _id: %w", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		return fmt.Errorf("embedded database: index _id: list tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	rows.Close()
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+"_nodeexec_id", t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("embedded database: index _id of %s: %w", t, err)
		}
	}
	return nil
}

// Stop shuts the server down and waits for it.
func (e *Embedded) Stop() {
	e.stop()
	<-e.done
	e.lock.Close() // frees the data directory
}
