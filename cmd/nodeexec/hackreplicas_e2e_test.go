//go:build e2e

package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/internal/testbed"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// The README's command for the shared-database setup: hack/replicas up 2 starts two replicas on
// PostgreSQL through one front end; each lists both as alive, a deployment taken by one is read from the
// other with the replica that runs it; down stops them.
func TestHackReplicasStartsReplicasThatShareOneDatabase(t *testing.T) {
	needReplicaE2E(t, true)
	repo, _ := filepath.Abs("../..")
	name := storetest.ScratchName()
	env := append(os.Environ(), "NODEEXEC_BIN="+testbed.BuildNodeexec(t), "NODEEXEC_REPLICAS_RUN_DIR="+t.TempDir(),
		fmt.Sprintf("NODEEXEC_REPLICAS_PORT=%d", freePorts(t, 2)), fmt.Sprintf("NODEEXEC_REPLICAS_DB_PORT=%d", freePorts(t, 1)),
		"NODEEXEC_REPLICAS_DATABASE="+name)
	hack := func(args ...string) string {
		cmd := osexec.Command(filepath.Join(repo, "hack", "replicas"), args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hack/replicas %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	hack("up", "2")
	t.Cleanup(func() { hack("down") })
	var urls []string
	for _, line := range strings.Split(hack("env"), "\n") {
		if v, ok := strings.CutPrefix(line, "export NODEEXEC_REPLICA_URLS="); ok {
			urls = strings.Split(v, ",")
		}
		if uri, ok := strings.CutPrefix(line, "export NODEEXEC_REPLICA_MONGO_URI="); ok {
			t.Cleanup(func() { storetest.DropDatabase(t, uri, name) }) // before down stops the front end
		}
	}
	if len(urls) != 2 {
		t.Fatalf("hack/replicas env: %v", urls)
	}
	for i, base := range urls {
		code, list, err := getReplicaJSON(base, "/api/v1/replicas")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s/api/v1/replicas: %d %v", base, code, err)
		}
		alive, this := 0, 0
		for _, raw := range list["replicas"].([]any) {
			r := raw.(map[string]any)
			if r["alive"] == true {
				alive++
			}
			if r["this"] == true {
				this++
			}
		}
		if alive != 2 || this != 1 {
			t.Errorf("replica %d lists %v; want 2 alive, itself once", i, list)
		}
	}
	code, accepted, err := postJSON(urls[0], "/api/v1/deployments", occupancyDeploy("hack-replicas", "v1", []string{"127.0.0.1"}))
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("deploy on replica 1: %d %v %v", code, accepted, err)
	}
	code, d, err := getReplicaJSON(urls[1], "/api/v1/deployments/"+accepted["id"].(string))
	if err != nil || code != http.StatusOK || !strings.Contains(fmt.Sprint(d["replica"]), "127.0.0.1:") {
		t.Errorf("the deployment read from replica 2: %d %v %v; want it, naming the replica that runs it", code, d, err)
	}
}

// freePorts finds n consecutive free loopback ports and returns the first.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		first := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		ok := true
		for p := first; p < first+n && ok; p++ {
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err != nil {
				ok = false
			} else {
				_ = l.Close()
			}
		}
		if ok {
			return first
		}
	}
	t.Fatal("no free loopback ports")
	return 0
}
