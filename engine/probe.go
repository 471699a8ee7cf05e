package engine

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// httpProbeTimeout bounds one live HTTP check of a node.
const httpProbeTimeout = 3 * time.Second

// ProbeHTTP checks a node's HTTP health now, from this process: ok when GET on hc's port and path
// (default /health) answers hc's status (default 200); message says what it got.
func ProbeHTTP(ctx context.Context, addr string, hc executor.HealthCheck) (ok bool, message string) {
	path := hc.HTTPPath
	if path == "" {
		path = "/health"
	}
	want := hc.HTTPStatus
	if want == 0 {
		want = http.StatusOK
	}
	url := "http://" + net.JoinHostPort(addr, strconv.Itoa(hc.HTTPPort)) + path
	ctx, cancel := context.WithTimeout(ctx, httpProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, "GET " + url + ": " + err.Error()
	}
	resp.Body.Close()
	return resp.StatusCode == want, fmt.Sprintf("GET %s: %d", url, resp.StatusCode)
}
