package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDatabaseTakesThePostgreSQLURLFromOneSourceAndNeverAPasswordOnTheCommandLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pg.url")
	if err := os.WriteFile(file, []byte("postgres://nodeexec:s3cret-pw@127.0.0.1:55432/nodeexec\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.url")
	if err := os.WriteFile(bad, []byte("mongodb://u:s3cret-pw@127.0.0.1/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, raw string
		want            string // the URL, or a part of the error
		badInput        bool
	}{
		{"from a file, trimmed", file, "", "postgres://nodeexec:s3cret-pw@127.0.0.1:55432/nodeexec", false},
		{"on the command line without a password", "", "postgres://nodeexec@127.0.0.1:55432/nodeexec", "postgres://nodeexec@127.0.0.1:55432/nodeexec", false},
		{"a password on the command line", "", "postgres://nodeexec:s3cret-pw@127.0.0.1/nodeexec", "--postgresql-url-file", true},
		{"both", file, "postgres://h/db", "not both", true},
		{"neither", "", "", "give --postgresql-url-file", true},
		{"a file that is not there", filepath.Join(t.TempDir(), "none"), "", "no such file", false},
		{"a file with another scheme", bad, "", `scheme "mongodb"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := postgresqlURL(tc.file, tc.raw)
			if err == nil {
				if got != tc.want {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
				return
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Fatalf("the error shows the password: %v", err)
			}
			if isFlagError(err) != tc.badInput {
				t.Fatalf("bad input (exit 2): %v, want %v", isFlagError(err), tc.badInput)
			}
		})
	}
}

func TestDatabaseWithoutAURLExits2(t *testing.T) {
	if code := run([]string{"database"}); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}
