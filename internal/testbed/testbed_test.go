package testbed

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

func TestBuildReleasePacksBinUnderItsServiceName(t *testing.T) {
	dir := t.TempDir()
	rel, err := BuildRelease(dir, "svc", "v1.2", false)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(rel.Path)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != rel.SHA256 {
		t.Fatalf("SHA256 %s does not match the file", rel.SHA256)
	}
	gz, err := gzip.NewReader(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Name == "bin/svc" && hdr.Mode&0o111 == 0 {
			t.Error("bin/svc is not executable")
		}
	}
	if strings.Join(names, ",") != "bin/,bin/svc" {
		t.Fatalf("layout %v, want [bin/ bin/svc]", names)
	}
	again, err := BuildRelease(dir, "svc", "v1.2", false)
	if err != nil || again.SHA256 != rel.SHA256 {
		t.Fatalf("rebuilding gave %s, %v; the tarball must be reproducible", again.SHA256, err)
	}
}

// With hosts up (NODEEXEC_E2E=1): each host is a real systemd machine reachable over SSH, and it can
// download what Serve serves.
func TestHostsAreRealAndReachReleases(t *testing.T) {
	if os.Getenv("NODEEXEC_E2E") != "1" {
		t.Skip("set NODEEXEC_E2E=1 with test hosts up")
	}
	h, err := LoadHosts()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/probe.txt", []byte("probe-bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	base, stop, err := Serve(context.Background(), h.ControllerIP, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if resp, err := http.Get(base + "/probe.txt"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("local GET: %v", err)
	}
	for i, addr := range h.Addrs {
		out, err := h.SSH(context.Background(), i, "systemctl is-system-running; cat /proc/1/comm; curl -fsS "+base+"/probe.txt")
		if err != nil {
			t.Fatalf("%s: %v\n%s", addr, err, out)
		}
		lines := strings.Fields(out)
		if len(lines) != 3 || lines[0] != "running" || lines[1] != "systemd" || lines[2] != "probe-bytes" {
			t.Errorf("%s: got %q, want running, systemd as PID 1, and the served bytes", addr, out)
		}
	}
}

func TestBuildReleaseWithCarriesTheExtraFiles(t *testing.T) {
	rel, err := BuildReleaseWith(t.TempDir(), "svc", "v1", false, map[string]string{"deploy/svc.service": "[Service]\n"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(rel.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	unit := ""
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Name == "deploy/svc.service" {
			data, _ := io.ReadAll(tr)
			unit = string(data)
		}
	}
	if strings.Join(names, ",") != "bin/,bin/svc,deploy/,deploy/svc.service" || unit != "[Service]\n" {
		t.Fatalf("layout %v, unit %q; want bin/svc and deploy/svc.service with its content", names, unit)
	}
}
