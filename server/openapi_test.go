package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// docs/openapi.yaml and the router describe the same API: the same routes, each documented fully, with
// the scope the router really enforces, and the JSON fields the Go types really have.

type spec struct {
	Paths      map[string]map[string]operation `yaml:"paths"`
	Components struct {
		Parameters map[string]parameter `yaml:"parameters"`
		Schemas    map[string]struct {
			Properties map[string]any `yaml:"properties"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

type operation struct {
	OperationID string         `yaml:"operationId"`
	Scope       string         `yaml:"x-scope"`
	Parameters  []parameter    `yaml:"parameters"`
	Responses   map[string]any `yaml:"responses"`
}

type parameter struct {
	Ref  string `yaml:"$ref"`
	Name string `yaml:"name"`
	In   string `yaml:"in"`
}

func loadSpec(t *testing.T) spec {
	t.Helper()
	data, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var s spec
	if err := yaml.Unmarshal(data, &s); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	return s
}

var ginParam = regexp.MustCompile(`:([A-Za-z_]+)`)

func TestOpenAPIAndRouterHaveTheSameRoutes(t *testing.T) {
	s := loadSpec(t)
	documented := map[string]bool{}
	for path, ops := range s.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	routed := map[string]bool{}
	for _, r := range New(Config{}).engine.Routes() {
		routed[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	if missing := difference(routed, documented); len(missing) > 0 {
		t.Errorf("routes not in docs/openapi.yaml: %v", missing)
	}
	if extra := difference(documented, routed); len(extra) > 0 {
		t.Errorf("documented routes the router lacks: %v", extra)
	}
}

func difference(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func TestOpenAPIOperationsAreComplete(t *testing.T) {
	s := loadSpec(t)
	ids := map[string]string{}
	for path, ops := range s.Paths {
		for method, op := range ops {
			where := strings.ToUpper(method) + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", where)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %s also used by %s", where, op.OperationID, other)
			}
			ids[op.OperationID] = where
			ok2xx := false
			for code := range op.Responses {
				ok2xx = ok2xx || strings.HasPrefix(code, "2")
			}
			if !ok2xx {
				t.Errorf("%s: no 2xx response", where)
			}
			declared := map[string]bool{}
			for _, p := range op.Parameters {
				if p.Ref != "" {
					p = s.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
				}
				if p.In == "path" {
					declared[p.Name] = true
				}
			}
			for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
				if !declared[m[1]] {
					t.Errorf("%s: path parameter %s is not declared", where, m[1])
				}
			}
			guarded := strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/internal/")
			if guarded && op.Scope != string(ScopeRead) && op.Scope != string(ScopeDeploy) {
				t.Errorf("%s: x-scope is %q, want read or deploy", where, op.Scope)
			}
		}
	}
}

// The scope each operation documents is the one the router enforces: without a token every guarded
// route answers 401, a read token on a deploy route 403, and a read token passes a read route. Past the
// middleware the handlers find no database here and answer 500 (a recovered panic): that still shows
// the token was let through.
func TestOpenAPIScopesAreEnforced(t *testing.T) {
	s := loadSpec(t)
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	srv := New(Config{Logger: quiet, Tokens: []Token{{Name: "viewer", Token: "read-token-0123456789", Scopes: []Scope{ScopeRead}}}})
	h := srv.Handler()
	fill := strings.NewReplacer("{id}", "d-1", "{deployment_id}", "d-1", "{service}", "demo", "{host}", "h1")
	status := func(method, path, token string) int {
		req := httptest.NewRequest(method, fill.Replace(path), nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for path, ops := range s.Paths {
		for method, op := range ops {
			m := strings.ToUpper(method)
			if op.Scope == "" {
				if code := status(m, path, ""); code == http.StatusUnauthorized {
					t.Errorf("%s %s is documented open but answers 401", m, path)
				}
				continue
			}
			if code := status(m, path, ""); code != http.StatusUnauthorized {
				t.Errorf("%s %s without a token = %d, want 401", m, path, code)
			}
			code := status(m, path, "read-token-0123456789")
			switch {
			case op.Scope == string(ScopeDeploy) && code != http.StatusForbidden:
				t.Errorf("%s %s (x-scope deploy) with a read token = %d, want 403", m, path, code)
			case op.Scope == string(ScopeRead) && (code == http.StatusUnauthorized || code == http.StatusForbidden):
				t.Errorf("%s %s (x-scope read) with a read token = %d", m, path, code)
			}
		}
	}
}

// The schemas name exactly the JSON fields the Go types have.
func TestOpenAPISchemasMatchTheGoTypes(t *testing.T) {
	s := loadSpec(t)
	for schema, v := range map[string]any{
		"DeployRequest":  deployBody{},
		"Deployment":     store.Deployment{},
		"DeploymentNode": store.DeploymentNode{},
		"Node":           store.Node{},
		"Event":          store.Event{},
		"Step":           executor.Step{},
		"Info":           deploymentInfo{},
	} {
		var documented []string
		for name := range s.Components.Schemas[schema].Properties {
			documented = append(documented, name)
		}
		sort.Strings(documented)
		if got, want := strings.Join(documented, ","), strings.Join(jsonFields(reflect.TypeOf(v)), ","); got != want {
			t.Errorf("schema %s has fields\n  %s\nthe Go type has\n  %s", schema, got, want)
		}
	}
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
