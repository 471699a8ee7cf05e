package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
)

// Service is a throwaway service on the test hosts for one test: a name and a port of its own, its
// releases built and served to the hosts, and everything of it removed from the hosts when the test
// ends, so tests never see each other's leftovers.
type Service struct {
	Name     string
	Port     int
	Releases map[string]Release
	BaseURL  string
	dir      string // served at BaseURL
}

// NewService builds a release per version (broken[version] makes one whose health check fails) of a
// new service named prefix-<random>, and serves them from the controller's address.
func NewService(t testing.TB, hosts Hosts, prefix string, broken map[string]bool) *Service {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	s := &Service{Name: prefix + "-" + hex.EncodeToString(b), Port: 20000 + int(b[0])*31%9000 + int(b[1])%97, Releases: map[string]Release{}}
	dir := t.TempDir()
	s.dir = dir
	for version, isBroken := range broken {
		rel, err := BuildRelease(dir, s.Name, version, isBroken)
		if err != nil {
			t.Fatalf("build %s: %v", version, err)
		}
		s.Releases[version] = rel
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url, stop, err := Serve(ctx, hosts.ControllerIP, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	s.BaseURL = url
	t.Cleanup(func() {
		for i := range hosts.Addrs {
			_, _ = hosts.SSH(context.Background(), i, fmt.Sprintf(
				"systemctl disable --now %[1]s.service; rm -rf /opt/%[1]s /etc/systemd/system/%[1]s.service; systemctl daemon-reload", s.Name))
		}
	})
	return s
}

// URL is where the hosts download version's package.
func (s *Service) URL(version string) string {
	return s.BaseURL + "/" + filepath.Base(s.Releases[version].Path)
}

// AddRelease builds and serves one more release of the service, with more files in its package (see
// BuildReleaseWith).
func (s *Service) AddRelease(t testing.TB, version string, broken bool, files map[string]string) Release {
	t.Helper()
	rel, err := BuildReleaseWith(s.dir, s.Name, version, broken, files)
	if err != nil {
		t.Fatalf("build %s: %v", version, err)
	}
	s.Releases[version] = rel
	return rel
}
