package store

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestPostgreSQLURLIsCheckedAndItsPasswordNeverShown(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // in the error; "" for none
	}{
		{"postgres://nodeexec:s3cret-pw@127.0.0.1:55432/nodeexec", ""},
		{"postgresql://u@db.example/deploys?sslmode=require", ""},
		{"postgres:///nodeexec?host=/tmp/nodeexec-pg", ""},
		{"mongodb://u:s3cret-pw@127.0.0.1/nodeexec", `scheme "mongodb"`},
		{"postgres://u:s3cret-pw@127.0.0.1:55432", "names no database"},
		{"postgres://u:s3cret-pw@127.0.0.1:55432/", "names no database"},
		{"postgres:///nodeexec", "names no host"},
		{"host=127.0.0.1 password=s3cret-pw dbname=nodeexec", "scheme"},
		{"postgres://u:s3cret-pw@127.0.0.1:5x/nodeexec", "is not a URL"},
		{"", "scheme"},
	} {
		err := ValidatePostgreSQLURL(tc.url)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: unexpected error %v", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want one saying %q", tc.url, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "s3cret-pw"):
			t.Errorf("%q: error shows the password: %v", tc.url, err)
		}
	}
}

func TestRedactURLMasksThePassword(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://nodeexec:s3cret-pw@127.0.0.1:55432/nodeexec": "postgres://nodeexec:xxxxx@127.0.0.1:55432/nodeexec",
		"postgres://nodeexec@127.0.0.1/nodeexec":                 "postgres://nodeexec@127.0.0.1/nodeexec",
		"postgres://u:s3cret-pw@127.0.0.1:5x/nodeexec":           "(unparsable URL)",
		"s3cret-pw": "(unparsable URL)",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrubRemovesThePasswordFromAnyError(t *testing.T) {
	err := scrub(errors.New(`connect "postgres://u:s3cret-pw@h/db": refused (s3cret-pw)`), "postgres://u:s3cret-pw@h/db")
	if strings.Contains(err.Error(), "s3cret-pw") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("scrubbed: %v", err)
	}
}

func TestFrontendListensOnLoopbackOnly(t *testing.T) {
	_, err := StartFrontend(context.Background(), "postgres://u:pw@127.0.0.1:1/nodeexec", "0.0.0.0:27018", nil)
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("got %v, want a refusal of a non-loopback address", err)
	}
}

// Nothing listens on port 1: the front end must say so at start, not at the first deploy, and not
// with the password.
func TestFrontendWithNoPostgreSQLFailsAtStartWithoutThePassword(t *testing.T) {
	start := time.Now()
	fe, err := StartFrontend(context.Background(), "postgres://nodeexec:s3cret-pw@127.0.0.1:1/nodeexec", "127.0.0.1:0", nil)
	if err == nil {
		fe.Stop()
		t.Fatal("started over a PostgreSQL that is not there")
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("the error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("the error does not name the server: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v to fail", d)
	}
	t.Log(err)
}

func TestFerretDBLogsOnlyErrorsThatAreNotExpectedDuplicateKeys(t *testing.T) {
	var buf strings.Builder
	log := slog.New(&quiet{Handler: slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	log.Warn("Response message", "errmsg", "no such command: 'endSessions'")
	log.Error("Query", "err", `ERROR: duplicate key value violates unique constraint "x" (SQLSTATE 23505)`)
	log.Error("Query", "err", "ERROR: relation does not exist (SQLSTATE 42P01)")
	if got := buf.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "42P01") {
		t.Fatalf("logged:\n%s", got)
	}
}
