package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Frontend is FerretDB's MongoDB front end over a PostgreSQL database, run in this process: the shared
// database of several nodeexec replicas where no MongoDB can be had (`nodeexec database`). Every replica
// reaches the one front end with --mongo-uri.
//
// One front end, not one per replica: FerretDB v1's PostgreSQL handler reads the catalogue of its
// collections once, at its first request, and never again. A second front end does not see a collection
// the first created later (its reads of it answer nothing, its writes fail with "relation already
// exists"), and two front ends creating one collection at once fail one of them. See
// docs/shared-database.md.
type Frontend struct {
	// URI is the MongoDB URI the replicas connect to (mongodb://ADDR/).
	URI  string
	stop context.CancelFunc
	done chan struct{}
}

// ValidatePostgreSQLURL checks a PostgreSQL URL is one FerretDB can use: postgres:// or postgresql://,
// a host, a database. Its errors never repeat the password.
func ValidatePostgreSQLURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url's own error quotes the whole URL, password and all.
		return fmt.Errorf("PostgreSQL URL %s is not a URL (want postgres://USER:PASSWORD@HOST:PORT/DATABASE)", RedactURL(raw))
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("PostgreSQL URL %s: scheme %q, want postgres:// (e.g. postgres://USER:PASSWORD@HOST:PORT/DATABASE)", RedactURL(raw), u.Scheme)
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return fmt.Errorf("PostgreSQL URL %s names no host", RedactURL(raw))
	}
	if strings.Trim(u.Path, "/") == "" {
		return fmt.Errorf("PostgreSQL URL %s names no database (…/DATABASE)", RedactURL(raw))
	}
	return nil
}

// RedactURL is a URL as it may be logged: its password replaced by ****. Text that does not parse as a
// URL is not shown at all.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// scrub removes the password of raw from an error's text, whatever produced it.
func scrub(err error, raw string) error {
	if err == nil {
		return nil
	}
	u, perr := url.Parse(raw)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "****"))
}

// StartFrontend starts FerretDB over the PostgreSQL database at pgURL, listening on listen (a loopback
// address: the front end asks MongoDB clients for no password), and checks that PostgreSQL answers and
// accepts the credentials before it returns. logger receives FerretDB's warnings (nil: none).
func StartFrontend(ctx context.Context, pgURL, listen string, logger *slog.Logger) (*Frontend, error) {
	if err := ValidatePostgreSQLURL(pgURL); err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		return nil, fmt.Errorf("database front end: listen address %q is not a loopback address: it asks MongoDB clients for no password, so it serves this machine only", listen)
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// FerretDB logs every wire message at its default level, and a warning for every command it lacks
	// (the driver's endSessions at each disconnect): keep errors only, less the duplicate keys nodeexec
	// provokes on purpose (a unique _id insert is how it reserves a key).
	logger = slog.New(&quiet{Handler: logger.Handler()})
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: listen},
		Handler:       "postgresql",
		PostgreSQLURL: pgURL,
		Logger:        logger,
	})
	if err != nil {
		return nil, fmt.Errorf("database front end on %s: %w", RedactURL(pgURL), scrub(err, pgURL))
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	fe := &Frontend{stop: stop, done: make(chan struct{})}
	go func() {
		defer close(fe.done)
		_ = f.Run(runCtx)
	}()
	// MongoDBURI blocks until the listener is up; bound the wait.
	uri := make(chan string, 1)
	go func() { uri <- f.MongoDBURI() }()
	select {
	case fe.URI = <-uri:
	case <-time.After(30 * time.Second):
		fe.Stop()
		return nil, errors.New("database front end did not start listening within 30s")
	}
	if err := fe.check(ctx, pgURL); err != nil {
		fe.Stop()
		return nil, err
	}
	return fe, nil
}

// check makes the front end reach PostgreSQL now (FerretDB connects at the first request), so that a
// wrong address or password is an error at start, not at the first deploy.
func (fe *Frontend) check(ctx context.Context, pgURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(fe.URI).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		return fmt.Errorf("database front end: %w", err)
	}
	defer func() { _ = c.Disconnect(context.WithoutCancel(ctx)) }()
	if _, err := c.ListDatabaseNames(ctx, map[string]any{}); err != nil {
		return fmt.Errorf("database front end: PostgreSQL at %s: %w (is it running, and are the user, password and database right?)",
			RedactURL(pgURL), scrub(err, pgURL))
	}
	return nil
}

// Stop closes the listener and the connections to PostgreSQL, and waits for them.
func (fe *Frontend) Stop() {
	fe.stop()
	<-fe.done
}

// Done is closed when the front end has stopped.
func (fe *Frontend) Done() <-chan struct{} { return fe.done }

// quiet passes FerretDB's errors on, but not the duplicate-key errors of inserts nodeexec expects to fail.
type quiet struct{ slog.Handler }

func (h *quiet) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError && h.Handler.Enabled(ctx, l)
}

func (h *quiet) Handle(ctx context.Context, r slog.Record) error {
	dup := false
	r.Attrs(func(a slog.Attr) bool {
		dup = a.Key == "err" && strings.Contains(a.Value.String(), "SQLSTATE 23505") // unique_violation
		return !dup
	})
	if dup {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *quiet) WithAttrs(a []slog.Attr) slog.Handler { return &quiet{Handler: h.Handler.WithAttrs(a)} }

func (h *quiet) WithGroup(name string) slog.Handler {
	return &quiet{Handler: h.Handler.WithGroup(name)}
}
