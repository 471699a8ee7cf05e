package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nodeexec.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// The file overrides the defaults and the environment overrides the file; what neither sets keeps its default.
func TestFileThenEnvironmentOverTheDefaults(t *testing.T) {
	path := write(t, `
listen: 127.0.0.1:9090
max_concurrent: 8
shutdown_grace: 2m
database: {name: deploys, data_dir: /srv/nodeexec}
nodes: {ssh_user: deploy, become: true, base_dir: /srv}
`)
	cfg, err := Load(path, envOf(map[string]string{"NODEEXEC_MAX_CONCURRENT": "16", "NODEEXEC_SSH_USER": "ops", "NODEEXEC_INSECURE_HOST_KEYS": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Listen, want.MaxConcurrent, want.ShutdownGrace = "127.0.0.1:9090", 16, Duration(2*time.Minute)
	want.Database.Name, want.Database.DataDir = "deploys", "/srv/nodeexec"
	want.Nodes = Nodes{SSHUser: "ops", Become: true, BaseDir: "/srv", InsecureHostKeys: true}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("loaded\n%+v\nwant\n%+v", cfg, want)
	}
	if cfg, err := Load("", envOf(nil)); err != nil || !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("no file, no environment = %+v %v", cfg, err)
	}
}

func TestBadFilesAndValuesAreNamed(t *testing.T) {
	for body, want := range map[string]string{
		"listen: 127.0.0.1:1\nlisten_addr: x\n": "field listen_addr not found",
		"shutdown_grace: soon\n":                "\"soon\" is not a duration",
		"max_concurrent: [1]\n":                 "cannot unmarshal",
		"nodes: {ssh_port: many}\n":             "cannot unmarshal",
	} {
		if _, err := Load(write(t, body), envOf(nil)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), envOf(nil)); err == nil || !strings.Contains(err.Error(), "config file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load("", envOf(map[string]string{"NODEEXEC_SSH_PORT": "twenty-two"})); err == nil || !strings.Contains(err.Error(), "NODEEXEC_SSH_PORT") {
		t.Errorf("bad environment value: %v", err)
	}
}

func TestCheckNamesEveryProblem(t *testing.T) {
	c := Default()
	c.Listen = "0.0.0.0:8080"
	c.MaxConcurrent = 0
	c.Database.DataDir = "relative/dir"
	c.Database.Name = "a.b"
	c.Nodes.BaseDir = "/opt/../etc"
	c.Nodes.SSHKey = filepath.Join(t.TempDir(), "nope")
	c.Nodes.PlaybookDir = t.TempDir()
	var got []string
	for _, p := range c.Check() {
		got = append(got, p.Setting)
	}
	want := "database.data_dir,database.name,listen,max_concurrent,nodes.base_dir,nodes.playbook_dir,nodes.ssh_key"
	slices.Sort(got)
	if strings.Join(got, ",") != want {
		t.Errorf("problems with %v, want %s", got, want)
	}
	if p := Default().Check(); len(p) != 0 {
		t.Errorf("the defaults have problems: %v", p)
	}
	c = Default()
	c.Database.MongoURI = "postgres://x"
	if p := c.Check(); len(p) != 1 || p[0].Setting != "database.mongo_uri" {
		t.Errorf("a non-MongoDB URI: %v", p)
	}
}

func TestMaskedHidesTheDatabasePassword(t *testing.T) {
	c := Default()
	c.Database.MongoURI = "mongodb://nodeexec:s3cr3t-pw@db.example:27017/?authSource=admin"
	out := c.Masked()
	if strings.Contains(out, "s3cr3t-pw") || !strings.Contains(out, "mongodb://nodeexec:****@db.example:27017/?authSource=admin") {
		t.Errorf("masked:\n%s", out)
	}
	if !strings.Contains(out, "shutdown_grace: 1m0s") || !strings.Contains(out, "listen: 127.0.0.1:8080") {
		t.Errorf("masked output lacks settings:\n%s", out)
	}
}

// example.yaml names every setting, each with its default: it must load and equal the defaults.
func TestTheExampleIsTheDefaults(t *testing.T) {
	cfg, err := Load("example.yaml", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Database.DataDir = "/var/lib/nodeexec"
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("example.yaml loads as\n%+v\nthe defaults are\n%+v", cfg, want)
	}
	b, _ := os.ReadFile("example.yaml")
	for _, e := range Env {
		if !strings.Contains(string(b), e.Name) {
			t.Errorf("example.yaml does not mention %s", e.Name)
		}
	}
}
