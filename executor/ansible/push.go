package ansible

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/internal/readwatch"
)

// DefaultPushMaxBytes bounds a package nodeexec downloads for a push deploy, when Config does not.
const DefaultPushMaxBytes int64 = 1 << 30

// errStalled is why a download was stopped when no byte came for a whole DownloadTimeout.
var errStalled = errors.New("no data within the download timeout")

// fetchPackage downloads pkg for a push deploy to a directory of its own under WorkDir: at most
// PushMaxBytes, its SHA256 checked here, before any node sees it. The connection, the answer's headers
// and every read are bounded by DownloadTimeout (a slow package is fine, a stalled one is not). remove
// deletes the file and its directory; on error nothing is left behind.
func (e *Executor) fetchPackage(ctx context.Context, pkg executor.Package) (string, func(), error) {
	dir, err := os.MkdirTemp(e.cfg.WorkDir, "nodeexec-push-")
	if err != nil {
		return "", nil, fmt.Errorf("make a directory for the package: %w", err)
	}
	remove := func() { _ = os.RemoveAll(dir) }
	path := filepath.Join(dir, "package.tar.gz")
	if err := e.download(ctx, pkg, path); err != nil {
		remove()
		return "", nil, fmt.Errorf("download %s: %w", pkg.URL, err)
	}
	e.log.WithField("url", pkg.URL).Info("push delivery: package downloaded and its SHA256 checked")
	return path, remove, nil
}

func (e *Executor) download(ctx context.Context, pkg executor.Package, path string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timeout := e.cfg.DownloadTimeout
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	transport.TLSHandshakeTimeout = timeout
	transport.ResponseHeaderTimeout = timeout
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pkg.URL, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the server answered %s", resp.Status)
	}
	limit := e.cfg.PushMaxBytes
	if resp.ContentLength > limit {
		return fmt.Errorf("the package is %d bytes, over the limit of %d (push.max_bytes)", resp.ContentLength, limit)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	// Every read must bring data within the timeout: the timer is reset by each one.
	stall := time.AfterFunc(timeout, func() { cancel(errStalled) })
	defer stall.Stop()
	body := readwatch.OnData(resp.Body, func() { stall.Reset(timeout) })
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, limit+1))
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
		return err
	}
	if n > limit {
		return fmt.Errorf("the package is over the limit of %d bytes (push.max_bytes)", limit)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), strings.ToLower(pkg.SHA256); got != want {
		return fmt.Errorf("its SHA256 is %s, want %s: not sent to any node", got, want)
	}
	return nil
}
