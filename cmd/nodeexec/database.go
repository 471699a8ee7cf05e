package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/store"
)

// databaseCmd serves a shared database for several `nodeexec serve` replicas where no MongoDB can be had:
// FerretDB's MongoDB front end over a PostgreSQL database, in this process, until a signal. The replicas
// reach it with --mongo-uri. One front end for all of them (not one inside each): see
// docs/shared-database.md.
func databaseCmd(ctx context.Context, args []string) (bool, error) {
	fs := flag.NewFlagSet("nodeexec database", flag.ContinueOnError)
	urlFile := fs.String("postgresql-url-file", os.Getenv("NODEEXEC_POSTGRESQL_URL_FILE"),
		"file holding the PostgreSQL URL, postgres://USER:PASSWORD@HOST:PORT/DATABASE (a URL with a password goes here)")
	rawURL := fs.String("postgresql-url", "", "the PostgreSQL URL, when it carries no password (a trusted socket, or ~/.pgpass)")
	listen := fs.String("listen", envOr("NODEEXEC_DATABASE_LISTEN", "127.0.0.1:27018"), "loopback address to serve MongoDB clients on")
	if err := parseFlags(fs, args); err != nil {
		return false, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "nodeexec database: unexpected argument %q\n", fs.Arg(0))
		return false, errUsage
	}
	pgURL, err := postgresqlURL(*urlFile, *rawURL)
	if err != nil {
		return false, err
	}
	log := logrus.New()
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetOutput(os.Stderr)
	fe, err := store.StartFrontend(ctx, pgURL, *listen, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	if err != nil {
		return false, err
	}
	defer fe.Stop()
	log.WithFields(logrus.Fields{"mongo_uri": fe.URI, "postgresql": store.RedactURL(pgURL)}).Info("nodeexec database serving")
	select {
	case <-ctx.Done():
		log.Info("nodeexec database: stopping")
		return true, nil
	case <-fe.Done():
		return false, errors.New("the database front end stopped")
	}
}

// postgresqlURL is the URL from exactly one of its two sources. A password never comes from the command
// line, where every user of the machine can read it (ps).
func postgresqlURL(file, raw string) (string, error) {
	switch {
	case file != "" && raw != "":
		return "", flagError("give --postgresql-url-file or --postgresql-url, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read the PostgreSQL URL: %w", err)
		}
		u := strings.TrimSpace(string(b))
		if err := store.ValidatePostgreSQLURL(u); err != nil {
			return "", fmt.Errorf("%s: %w", file, err)
		}
		return u, nil
	case raw != "":
		if err := store.ValidatePostgreSQLURL(raw); err != nil {
			return "", err
		}
		if u, _ := url.Parse(raw); u.User != nil {
			if _, ok := u.User.Password(); ok {
				return "", flagError("--postgresql-url carries a password, which any user can read on the command line: put the URL in a file (mode 0600) and give --postgresql-url-file")
			}
		}
		return raw, nil
	}
	return "", flagError("give --postgresql-url-file FILE (or --postgresql-url URL without a password)")
}

// flagError is an error in the flags: exit status 2, as for any bad input.
type flagError string

func (e flagError) Error() string { return string(e) }

// isFlagError reports whether err is, or wraps, a flagError.
func isFlagError(err error) bool {
	var f flagError
	return errors.As(err, &f)
}
