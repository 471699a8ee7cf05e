package nodeexec

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// No container engine runs here, so the image is held to what is tested instead: its runtime installs
// only packages hack/deps installs (what the tests run with), at least those nodeexec needs at run
// time, and it builds with the Go that go.mod names.
func TestDockerfileMatchesTheTestedSetUp(t *testing.T) {
	docker := read(t, "Dockerfile")
	deps := read(t, "hack/deps")
	gomod := read(t, "go.mod")

	m := regexp.MustCompile(`(?m)^pkgs=\(([^)]*)\)`).FindStringSubmatch(deps)
	if m == nil {
		t.Fatal("hack/deps has no pkgs=(...) list")
	}
	tested := map[string]bool{}
	for _, p := range strings.Fields(m[1]) {
		tested[p] = true
	}
	install := regexp.MustCompile(`apt-get install -y --no-install-recommends((?:\s+\\?\s*[a-z0-9.+-]+)+)`).FindStringSubmatch(docker)
	if install == nil {
		t.Fatal("the Dockerfile installs no packages with apt-get install -y --no-install-recommends")
	}
	image := map[string]bool{}
	for _, p := range strings.Fields(strings.ReplaceAll(install[1], `\`, " ")) {
		image[p] = true
		if !tested[p] {
			t.Errorf("the image installs %s, which hack/deps (what the tests run with) does not", p)
		}
	}
	for _, p := range []string{"ansible-core", "ansible", "openssh-client", "ca-certificates"} {
		if !image[p] {
			t.Errorf("the image lacks %s, which nodeexec needs at run time", p)
		}
	}

	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	builder := regexp.MustCompile(`(?m)^FROM golang:(\d+\.\d+)\S* AS build`).FindStringSubmatch(docker)
	if goVersion == nil || builder == nil || goVersion[1] != builder[1] {
		t.Errorf("the image builds with Go %v, go.mod names %v", builder, goVersion)
	}
	for _, want := range []string{"USER nodeexec", "CGO_ENABLED=0"} {
		if !strings.Contains(docker, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
