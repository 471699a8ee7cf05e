package server

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/internal/buildinfo"
)

// The server says which build it is, the same at GET /api/v1/version and in nodeexec_build_info.
func TestVersionAndBuildInfoNameTheRunningBuild(t *testing.T) {
	f := newFixture(t)
	want := buildinfo.Read()
	resp, err := http.Get(f.http.URL + "/api/v1/version")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got api.BuildInfo
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/version: %d, %v", resp.StatusCode, err)
	}
	if got != want || got.GoVersion == "" {
		t.Errorf("GET /api/v1/version = %+v, want %+v", got, want)
	}
	name := series("nodeexec_build_info", "commit", want.Commit, "go_version", want.GoVersion, "version", want.Version)
	if got := f.scrape(t)[name]; got != 1 {
		t.Errorf("/metrics %s = %v, want 1", name, got)
	}
}
