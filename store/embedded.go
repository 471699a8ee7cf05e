package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Embedded is a MongoDB-compatible server running inside this process (FerretDB on SQLite), for when no
// MongoDB URI is configured. It listens on loopback only.
type Embedded struct {
	URI  string
	stop context.CancelFunc
	done chan struct{}
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
	// FerretDB logs every wire message at its default level: keep it to warnings and above.
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    quiet,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded database: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e := &Embedded{stop: stop, done: make(chan struct{})}
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

// Stop shuts the server down and waits for it.
func (e *Embedded) Stop() {
	e.stop()
	<-e.done
}
