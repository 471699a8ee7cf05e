// Package testbed gives tests and benchmarks the real parts they deploy to: the test hosts that
// `hack/testhosts up N` brought up, release tarballs of the demo service, and an HTTP server the hosts
// download them from.
package testbed

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Hosts are the running test hosts and how to reach them.
type Hosts struct {
	Addrs        []string
	SSHKey       string
	SSHUser      string
	ControllerIP string
}

// runDirs are where hack/testhosts keeps its state (hosts.env), in the order it picks them.
var runDirs = []string{"/run/nodeexec-testhosts", "/tmp/nodeexec-testhosts"}

// LoadHosts reads the test hosts from the environment (NODEEXEC_TEST_HOSTS, ...) or, when that is
// unset, from the hosts.env that hack/testhosts wrote.
func LoadHosts() (Hosts, error) {
	env := map[string]string{}
	for _, k := range []string{"NODEEXEC_TEST_HOSTS", "NODEEXEC_TEST_SSH_KEY", "NODEEXEC_TEST_SSH_USER", "NODEEXEC_TEST_CONTROLLER_IP"} {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
	}
	if env["NODEEXEC_TEST_HOSTS"] == "" {
		dirs := runDirs
		if d := os.Getenv("NODEEXEC_RUN_DIR"); d != "" {
			dirs = []string{d}
		}
		for _, dir := range dirs {
			if err := readEnvFile(filepath.Join(dir, "hosts.env"), env); err == nil {
				break
			}
		}
	}
	h := Hosts{SSHKey: env["NODEEXEC_TEST_SSH_KEY"], SSHUser: env["NODEEXEC_TEST_SSH_USER"], ControllerIP: env["NODEEXEC_TEST_CONTROLLER_IP"]}
	for _, a := range strings.Split(env["NODEEXEC_TEST_HOSTS"], ",") {
		if a = strings.TrimSpace(a); a != "" {
			h.Addrs = append(h.Addrs, a)
		}
	}
	if len(h.Addrs) == 0 || h.SSHKey == "" || h.ControllerIP == "" {
		return Hosts{}, errors.New("no test hosts are up: run `sudo hack/testhosts up 3` first")
	}
	if h.SSHUser == "" {
		h.SSHUser = "root"
	}
	return h, nil
}

// readEnvFile reads `export KEY=VALUE` lines.
func readEnvFile(path string, into map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if k, v, ok := strings.Cut(line, "="); ok {
			into[k] = strings.Trim(v, `"'`)
		}
	}
	return sc.Err()
}

// SSH runs cmd on host i (0-based) and returns its combined output.
func (h Hosts) SSH(ctx context.Context, i int, cmd string) (string, error) {
	if i < 0 || i >= len(h.Addrs) {
		return "", fmt.Errorf("no test host %d (have %d)", i, len(h.Addrs))
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh", "-i", h.SSHKey, "-l", h.SSHUser,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", h.Addrs[i], cmd).CombinedOutput()
	return string(out), err
}

// AccountsTasks says whether systemd on host i accounts what unit uses (TasksCurrent has a value). On a
// machine with cgroup v1 the hosts' cgroups are read-only inside the container and systemd accounts
// nothing there, as on any node without cgroup accounting; on cgroup v2 it accounts by default.
func (h Hosts) AccountsTasks(ctx context.Context, i int, unit string) (bool, error) {
	out, err := h.SSH(ctx, i, "systemctl show -p TasksCurrent --value "+unit)
	v := strings.TrimSpace(out)
	return err == nil && v != "" && v != "[not set]" && v != "18446744073709551615", err
}

// Release is a packed release of the demo service.
type Release struct {
	Version string
	Path    string
	SHA256  string
}

// BuildRelease builds the demo service (hack/demo-service) as service at version, packs it as
// dir/<service>-<version>.tar.gz with the layout bin/<service>, and returns its SHA256. A broken
// release starts but fails its health check.
func BuildRelease(dir, service, version string, broken bool) (Release, error) {
	return BuildReleaseWith(dir, service, version, broken, nil)
}

// BuildReleaseWith is BuildRelease with more files in the package (path inside it -> content), e.g.
// "deploy/<service>.service" for a package that ships its own systemd unit.
func BuildReleaseWith(dir, service, version string, broken bool, files map[string]string) (Release, error) {
	root, err := moduleRoot()
	if err != nil {
		return Release{}, err
	}
	bin := filepath.Join(dir, fmt.Sprintf(".bin-%s-%s-%v", service, version, broken))
	if _, err := os.Stat(bin); err != nil {
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin,
			"-ldflags", fmt.Sprintf("-s -w -X main.version=%s -X main.broken=%v", version, broken), "./hack/demo-service")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return Release{}, fmt.Errorf("build the demo service: %v\n%s", err, out)
		}
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.tar.gz", service, version))
	sum, err := packRelease(path, service, bin, files)
	if err != nil {
		return Release{}, err
	}
	return Release{Version: version, Path: path, SHA256: sum}, nil
}

func packRelease(dest, service, bin string, files map[string]string) (string, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	f, err := os.Create(dest)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	gz := gzip.NewWriter(io.MultiWriter(f, h))
	tw := tar.NewWriter(gz)
	mtime := time.Unix(0, 0)
	type member struct {
		hdr  *tar.Header
		data []byte
	}
	members := []member{
		{&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}, nil},
		{&tar.Header{Name: "bin/" + service, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data)), ModTime: mtime}, data},
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names) // the same files give the same tarball, whatever the map's order
	dirs := map[string]bool{"bin": true}
	for _, name := range names {
		if d := path.Dir(name); d != "." && !dirs[d] {
			dirs[d] = true
			members = append(members, member{&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}, nil})
		}
		content := []byte(files[name])
		members = append(members, member{&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content)), ModTime: mtime}, content})
	}
	for _, m := range members {
		if err := tw.WriteHeader(m.hdr); err != nil {
			f.Close()
			return "", err
		}
		if _, err := tw.Write(m.data); err != nil {
			f.Close()
			return "", err
		}
	}
	if err := errors.Join(tw.Close(), gz.Close(), f.Close()); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Serve serves dir over HTTP on ip (a random port) for the test hosts; stop shuts it down.
func Serve(ctx context.Context, ip, dir string) (baseURL string, stop func(), err error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return "", nil, fmt.Errorf("serve releases on %s (are the test hosts up?): %w", ip, err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		_ = srv.Close()
	}()
	var once bool
	return "http://" + ln.Addr().String(), func() {
		if !once {
			once = true
			close(stopped)
		}
	}, nil
}

// ServeStalled serves, on ip, a package that never finishes: the headers and the first bytes of a
// body, then nothing until the test ends. It returns the package's URL.
func ServeStalled(t testing.TB, ip string) string {
	t.Helper()
	stall := make(chan struct{})
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("serve a stalled package on %s (are the test hosts up?): %v", ip, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1048576")
		_, _ = w.Write(make([]byte, 4096))
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { close(stall); _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/stalls.tar.gz"
}
