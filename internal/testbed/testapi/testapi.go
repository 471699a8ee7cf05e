// Package testapi serves nodeexec's HTTP API inside a test or benchmark, wired as `nodeexec serve` wires
// it with its default settings: the embedded database (FerretDB on SQLite) and the Ansible executor over
// SSH to the test hosts. Nothing to build or start beside it, and the caller's clock sees what a client
// of the API sees. (A package of its own: executor/ansible's tests use testbed, which must not depend on
// executor/ansible.)
package testapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/config"
	"github.com/nodeexec/nodeexec/executor/ansible"
	"github.com/nodeexec/nodeexec/internal/testbed"
	"github.com/nodeexec/nodeexec/server"
	"github.com/nodeexec/nodeexec/store"
)

// Server is the API, served on a loopback port until the test ends.
type Server struct {
	URL string
}

// Start serves the API for the test hosts; playbookDir holds ansible.cfg, playbooks/ and roles/ (the
// repository's root). It logs errors only, to stderr.
func Start(tb testing.TB, hosts testbed.Hosts, playbookDir string) *Server {
	tb.Helper()
	ctx := context.Background()
	defaults := config.Default()
	db, err := store.StartEmbedded(ctx, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Stop)
	st, err := db.Open(ctx, defaults.Database.Name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close(context.Background()) })
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(logrus.ErrorLevel)
	checkHostKeys := false // throwaway test hosts (serve's --insecure-host-keys)
	exec, err := ansible.New(ansible.Config{PlaybookDir: playbookDir, WorkDir: tb.TempDir(), Logger: log,
		SSH:             ansible.SSH{User: hosts.SSHUser, PrivateKeyFile: hosts.SSHKey, HostKeyChecking: &checkHostKeys},
		DownloadTimeout: time.Duration(defaults.Timeouts.Download), HealthTimeout: time.Duration(defaults.Timeouts.HealthCheck)})
	if err != nil {
		tb.Fatal(err)
	}
	srv := server.New(server.Config{Executor: exec, Store: st, Logger: log, MaxConcurrent: defaults.MaxConcurrent,
		Retry: defaults.Retry.Policy(), DeployTimeout: time.Duration(defaults.Timeouts.Deploy)})
	web := httptest.NewServer(srv.Handler())
	tb.Cleanup(func() { web.Close(); srv.Shutdown() })
	return &Server{URL: web.URL}
}

// Deployment is a deployment as the API reports it (the fields tests look at).
type Deployment struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Error string `json:"error"`
	Nodes []Node `json:"nodes"`
}

// Node is one node of a Deployment.
type Node struct {
	Host           string `json:"host"`
	State          string `json:"state"`
	CurrentVersion string `json:"current_version"`
	PrevVersion    string `json:"prev_version"`
	LastError      string `json:"last_error"`
}

// Deploy posts a deployment (the body of POST /api/v1/deployments) and follows its event stream to the
// end: the deployment as it ended.
func (s *Server) Deploy(ctx context.Context, body map[string]any) (Deployment, error) {
	started, err := s.post(ctx, "/api/v1/deployments", body)
	if err != nil {
		return Deployment{}, err
	}
	return s.FollowToEnd(ctx, started.ID)
}

// post sends body and expects 202 with the deployment it started.
func (s *Server) post(ctx context.Context, path string, body map[string]any) (Deployment, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return Deployment{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, bytes.NewReader(data))
	if err != nil {
		return Deployment{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Deployment{}, err
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return Deployment{}, fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, reply)
	}
	var d Deployment
	return d, json.Unmarshal(reply, &d)
}

// FollowToEnd reads deployment id's server-sent events until the last one, "end", which carries the
// deployment as it ended. The stream replays what happened before it was opened, so a deployment that
// ended already ends it at once.
func (s *Server) FollowToEnd(ctx context.Context, id string) (Deployment, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/deployments/"+id+"/events", nil)
	if err != nil {
		return Deployment{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Deployment{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Deployment{}, fmt.Errorf("events of %s: %s", id, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			event = ""
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case event == "end" && strings.HasPrefix(line, "data: "):
			var d Deployment
			err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d)
			return d, err
		}
	}
	return Deployment{}, fmt.Errorf("the event stream of %s stopped before its end: %v", id, sc.Err())
}
