package ansible

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// A push deploy's package is downloaded on the controller: bounded in size and in stalls, its SHA256
// checked, and removed when the run is done or the download failed.
func TestPushDownloadIsBoundedCheckedAndCleanedUp(t *testing.T) {
	pkg := []byte(strings.Repeat("release bytes ", 100))
	sum := sha256.Sum256(pkg)
	good := hex.EncodeToString(sum[:])
	stalled := make(chan struct{})
	t.Cleanup(func() { close(stalled) })
	mux := http.NewServeMux()
	mux.HandleFunc("/pkg.tar.gz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(pkg) })
	mux.HandleFunc("/chunked.tar.gz", func(w http.ResponseWriter, r *http.Request) {
		// No Content-Length: only counting the bytes finds it too large.
		for range 40 {
			_, _ = w.Write(pkg)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/stalls.tar.gz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(pkg[:10])
		w.(http.Flusher).Flush()
		select {
		case <-stalled:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	work := t.TempDir()
	e := probeExecutor(t, func(c *Config) {
		c.WorkDir, c.PushMaxBytes, c.DownloadTimeout = work, int64(len(pkg)*10), 300*time.Millisecond
	})
	for _, c := range []struct {
		name, path, sha256, err string
	}{
		{"a good package", "/pkg.tar.gz", good, ""},
		{"the SHA256 in capitals", "/pkg.tar.gz", strings.ToUpper(good), ""},
		{"another SHA256", "/pkg.tar.gz", strings.Repeat("0", 64), "its SHA256 is " + good},
		{"over the limit, without a length", "/chunked.tar.gz", good, "over the limit of 14000 bytes"},
		{"a stalled download", "/stalls.tar.gz", good, "no data within the download timeout"},
		{"not found", "/nope.tar.gz", good, "404 Not Found"},
	} {
		path, remove, err := e.fetchPackage(context.Background(), executor.Package{URL: srv.URL + c.path, SHA256: c.sha256})
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		case c.err == "":
			if got, _ := os.ReadFile(path); string(got) != string(pkg) {
				t.Errorf("%s: the file holds %d bytes, want the package", c.name, len(got))
			}
			if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
				t.Errorf("%s: the file's mode is %v, want 0600", c.name, info.Mode().Perm())
			}
			remove()
		}
		if left, _ := filepath.Glob(filepath.Join(work, "*")); len(left) > 0 {
			t.Errorf("%s: left in the work directory: %v", c.name, left)
		}
	}

	big := probeExecutor(t, func(c *Config) { c.WorkDir, c.PushMaxBytes = work, 100 })
	if _, _, err := big.fetchPackage(context.Background(), executor.Package{URL: srv.URL + "/pkg.tar.gz", SHA256: good}); err == nil ||
		!strings.Contains(err.Error(), "the package is 1400 bytes, over the limit of 100") {
		t.Errorf("a package whose length is over the limit: %v", err)
	}
}
