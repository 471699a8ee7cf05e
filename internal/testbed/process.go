package testbed

import (
	"bufio"
	"encoding/json"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartLogged starts bin with args (env added to this process's) and waits, at most a minute, for its
// JSON log line whose msg is msg, which it returns. The process's log is passed on to tb, each line
// prefixed with name (with quiet, only the lines above info: a load of deployments logs thousands of
// lines). The process gets SIGTERM when tb ends (SIGKILL 30 s later), and its log is read to the end
// before tb ends.
func StartLogged(tb testing.TB, name, msg string, quiet bool, env []string, bin string, args ...string) map[string]any {
	tb.Helper()
	cmd := osexec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	scanned := make(chan struct{})
	tb.Cleanup(func() {
		defer func() { <-scanned }()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	found := make(chan map[string]any, 1)
	go func() {
		defer close(scanned)
		defer close(found)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		seen := false
		for sc.Scan() {
			var line map[string]any
			_ = json.Unmarshal(sc.Bytes(), &line)
			if !seen && line["msg"] == msg {
				seen = true
				found <- line
			}
			if lvl, _ := line["level"].(string); !quiet || (lvl != "info" && lvl != "debug") {
				tb.Logf("%s: %s", name, sc.Text())
			}
		}
	}()
	select {
	case line, ok := <-found:
		if !ok {
			tb.Fatalf("%s exited before logging %q", name, msg)
		}
		return line
	case <-time.After(time.Minute):
		tb.Fatalf("%s did not log %q within a minute", name, msg)
	}
	return nil
}

// BuildNodeexec builds the nodeexec binary into a temporary directory of tb, with the build tags given
// (occupancy: the test executor of internal/occupancy), and returns its path.
func BuildNodeexec(tb testing.TB, tags ...string) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "nodeexec")
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	if out, err := osexec.Command("go", append(args, "github.com/nodeexec/nodeexec/cmd/nodeexec")...).CombinedOutput(); err != nil {
		tb.Fatalf("build nodeexec %v: %v\n%s", tags, err, out)
	}
	return bin
}

// StartDatabase starts `nodeexec database` (bin) over the PostgreSQL server at pgURL, on a loopback port
// of its own, and returns its "serving" log line, whose mongo_uri the replicas connect to. The URL,
// password and all, goes in a file, never on a command line.
func StartDatabase(tb testing.TB, bin, pgURL string, quiet bool) map[string]any {
	tb.Helper()
	urlFile := filepath.Join(tb.TempDir(), "pg.url")
	if err := os.WriteFile(urlFile, []byte(pgURL+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	line := StartLogged(tb, "database", "nodeexec database serving", quiet, nil, bin, "database", "--postgresql-url-file", urlFile, "--listen", "127.0.0.1:0")
	if uri, _ := line["mongo_uri"].(string); !strings.HasPrefix(uri, "mongodb://127.0.0.1:") {
		tb.Fatalf("nodeexec database's serving line has no loopback mongo_uri: %v", line)
	}
	return line
}
