package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
)

// docs/openapi.yaml and the router describe the same API: the same routes, each documented fully, with
// the scope the router really enforces, the JSON fields the Go types really have, and the patterns the
// validators really apply.

// apiSpec is the part of docs/openapi.yaml these tests read.
type apiSpec struct {
	ops        []specOperation // sorted by path, then method
	parameters map[string]parameter
	responses  map[string]response
	schemas    map[string]map[string]any
}

type specOperation struct {
	method, path string
	operation
	// params are the path item's and the operation's, references resolved.
	params []parameter
}

func (o specOperation) String() string { return o.method + " " + o.path }

type operation struct {
	OperationID string                 `yaml:"operationId"`
	Scope       string                 `yaml:"x-scope"`
	Security    *[]map[string][]string `yaml:"security"`
	Parameters  []parameter            `yaml:"parameters"`
	Responses   map[string]response    `yaml:"responses"`
}

type parameter struct {
	Ref  string `yaml:"$ref"`
	Name string `yaml:"name"`
	In   string `yaml:"in"`
}

type response struct {
	Ref     string `yaml:"$ref"`
	Content map[string]struct {
		Schema map[string]any `yaml:"schema"`
	} `yaml:"content"`
}

var specMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true}

func loadSpec(t *testing.T) *apiSpec {
	t.Helper()
	data, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Paths      map[string]map[string]yaml.Node `yaml:"paths"`
		Components struct {
			Parameters map[string]parameter      `yaml:"parameters"`
			Responses  map[string]response       `yaml:"responses"`
			Schemas    map[string]map[string]any `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	s := &apiSpec{parameters: raw.Components.Parameters, responses: raw.Components.Responses, schemas: raw.Components.Schemas}
	for path, item := range raw.Paths {
		// A path item holds its operations beside keys that are not methods (parameters, summary, …).
		var shared []parameter
		if node, ok := item["parameters"]; ok {
			if err := node.Decode(&shared); err != nil {
				t.Fatalf("docs/openapi.yaml %s parameters: %v", path, err)
			}
		}
		for key, node := range item {
			if !specMethods[key] {
				continue
			}
			o := specOperation{method: strings.ToUpper(key), path: path}
			if err := node.Decode(&o.operation); err != nil {
				t.Fatalf("docs/openapi.yaml %s %s: %v", key, path, err)
			}
			for _, p := range append(append([]parameter{}, shared...), o.Parameters...) {
				o.params = append(o.params, s.resolveParameter(p))
			}
			s.ops = append(s.ops, o)
		}
	}
	sort.Slice(s.ops, func(i, j int) bool { return s.ops[i].String() < s.ops[j].String() })
	return s
}

func (s *apiSpec) resolveParameter(p parameter) parameter {
	if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
		return s.parameters[name]
	}
	return p
}

// routeParam is a gin path parameter (:id, or a catch-all *path).
var routeParam = regexp.MustCompile(`[:*]([A-Za-z_][A-Za-z0-9_]*)`)

// specParam is an OpenAPI path parameter ({id}).
var specParam = regexp.MustCompile(`\{([^}]+)\}`)

func TestOpenAPIAndRouterHaveTheSameRoutes(t *testing.T) {
	documented := map[string]bool{}
	for _, o := range loadSpec(t).ops {
		documented[o.String()] = true
	}
	// New only builds the router: it neither opens nor touches cfg.Store.
	routed := map[string]bool{}
	for _, r := range New(Config{}).router.Routes() {
		routed[r.Method+" "+routeParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	if missing := difference(routed, documented); len(missing) > 0 {
		t.Errorf("the router serves %d routes docs/openapi.yaml lacks; document them:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
	if extra := difference(documented, routed); len(extra) > 0 {
		t.Errorf("docs/openapi.yaml documents %d routes the router lacks (not built yet, or wrong in the spec):\n  %s", len(extra), strings.Join(extra, "\n  "))
	}
}

// difference is the keys of a that b lacks, sorted.
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
	if len(s.ops) == 0 {
		t.Fatal("docs/openapi.yaml has no operations")
	}
	ids := map[string]specOperation{}
	for _, o := range s.ops {
		if o.OperationID == "" {
			t.Errorf("%s: no operationId", o)
		} else if other, dup := ids[o.OperationID]; dup {
			t.Errorf("%s: operationId %s is also %s's", o, o.OperationID, other)
		}
		ids[o.OperationID] = o

		ok2xx := false
		for code, r := range o.Responses {
			ok2xx = ok2xx || strings.HasPrefix(code, "2")
			if strings.HasPrefix(code, "4") || strings.HasPrefix(code, "5") {
				if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
					r = s.responses[name]
				}
				if ref := r.Content["application/json"].Schema["$ref"]; ref != "#/components/schemas/Error" {
					t.Errorf("%s: response %s is not an application/json Error (schema %v)", o, code, ref)
				}
			}
		}
		if !ok2xx {
			t.Errorf("%s: no 2xx response", o)
		}

		declared := map[string]bool{}
		for _, p := range o.params {
			if p.In == "path" {
				declared[p.Name] = true
			}
		}
		inPath := map[string]bool{}
		for _, m := range specParam.FindAllStringSubmatch(o.path, -1) {
			inPath[m[1]] = true
		}
		for _, name := range difference(inPath, declared) {
			t.Errorf("%s: path parameter %s is not declared in parameters", o, name)
		}
		for _, name := range difference(declared, inPath) {
			t.Errorf("%s: declares path parameter %s, which is not in the path", o, name)
		}

		guarded := strings.HasPrefix(o.path, "/api/") || strings.HasPrefix(o.path, "/internal/")
		open := o.Security != nil && len(*o.Security) == 0
		switch {
		case (guarded || o.Scope != "") && o.Scope != string(ScopeRead) && o.Scope != string(ScopeDeploy) && o.Scope != string(ScopeAdmin):
			t.Errorf("%s: x-scope is %q, want read, deploy or admin", o, o.Scope)
		case o.Scope != "" && open:
			t.Errorf("%s: has x-scope %s but security: [] (no token)", o, o.Scope)
		case o.Scope == "" && !open:
			t.Errorf("%s: has no x-scope, so it is open, but does not say security: []", o)
		}
	}
}

// fillPath gives every path parameter a value, for a request that reaches the route.
func fillPath(path string) string { return specParam.ReplaceAllString(path, "x1") }

// The scope each operation documents is the one the router enforces. Every request here is answered by
// the auth middleware, before any handler runs, so the server needs no store: no token or an unknown one
// is 401 on every guarded route, a read token on a deploy route 403, and a token of any other scope on
// a route of admin's (which includes no other scope either) 403.
func TestOpenAPIScopesAreEnforcedBeforeAnyHandler(t *testing.T) {
	s := loadSpec(t)
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	h := New(Config{Logger: quiet, Tokens: []Token{{Name: "r", Token: "read-token-0123456789", Scopes: []Scope{ScopeRead}},
		{Name: "d", Token: "deploy-token-0123456789", Scopes: []Scope{ScopeDeploy}},
		{Name: "a", Token: "admin-token-0123456789", Scopes: []Scope{ScopeAdmin}}}}).Handler()
	forbidden := map[string][]string{
		string(ScopeRead):   {"admin-token-0123456789"},
		string(ScopeDeploy): {"read-token-0123456789", "admin-token-0123456789"},
		string(ScopeAdmin):  {"read-token-0123456789", "deploy-token-0123456789"},
	}
	answer := func(o specOperation, token string) (int, string) {
		req := httptest.NewRequest(o.method, fillPath(o.path), nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var body api.Error
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body.Code
	}
	for _, o := range s.ops {
		if o.Scope == "" {
			continue // open: its handler would answer, and that needs a store (see the test below)
		}
		for _, token := range []string{"", "unknown-token-0123456789"} {
			if code, errCode := answer(o, token); code != http.StatusUnauthorized || errCode != "unauthorized" {
				t.Errorf("%s (x-scope %s) with token %q = %d %q, want 401 unauthorized", o, o.Scope, token, code, errCode)
			}
		}
		for _, token := range forbidden[o.Scope] {
			if code, errCode := answer(o, token); code != http.StatusForbidden || errCode != "forbidden" {
				t.Errorf("%s (x-scope %s) with %s = %d %q, want 403 forbidden", o, o.Scope, token, code, errCode)
			}
		}
	}
}

// The other half: a token with the documented scope gets past the middleware (a read route does not
// demand deploy), and an open route asks for no token. Past the middleware the handlers run, so this one
// has a database; the requests name nothing that exists and carry no body, so nothing is deployed.
func TestOpenAPIScopesAdmitTheirTokens(t *testing.T) {
	s := loadSpec(t)
	f := newFixture(t, func(c *Config) {
		c.Tokens = []Token{{Name: "r", Token: "read-token-0123456789", Scopes: []Scope{ScopeRead}},
			{Name: "d", Token: "deploy-token-0123456789", Scopes: []Scope{ScopeDeploy}},
			{Name: "a", Token: "admin-token-0123456789", Scopes: []Scope{ScopeAdmin}}}
	})
	tokens := map[string]string{"": "", string(ScopeRead): "read-token-0123456789", string(ScopeDeploy): "deploy-token-0123456789",
		string(ScopeAdmin): "admin-token-0123456789"}
	for _, o := range s.ops {
		req, _ := http.NewRequest(o.method, f.http.URL+fillPath(o.path), nil)
		if token := tokens[o.Scope]; token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || resp.StatusCode >= 500 {
			t.Errorf("%s with a token of its x-scope %q = %d, want an answer from its handler", o, o.Scope, resp.StatusCode)
		}
	}
}

// The schemas name exactly the JSON fields the Go types have; for what the server sends, the required
// fields are exactly those always present (no omitempty).
func TestOpenAPISchemasMatchTheGoTypes(t *testing.T) {
	s := loadSpec(t)
	for _, c := range []struct {
		schema string
		v      any
		sent   bool // the server sends it, so "required" says what is always there
	}{
		{"DeployRequest", api.DeployRequest{}, false},
		{"HealthCheck", api.HealthCheck{}, false},
		{"Unit", api.Unit{}, false},
		{"Error", api.Error{}, true},
		{"Whoami", api.Whoami{}, true},
		{"DryRun", api.DryRun{}, true},
		{"DryRunNode", api.DryRunNode{}, true},
		{"Deployment", api.Deployment{}, true},
		{"Batch", api.Batch{}, true},
		{"DeploymentNode", api.DeploymentNode{}, true},
		{"Node", api.Node{}, true},
		{"NodeList", api.NodeList{}, true},
		{"LiveWorkload", api.LiveWorkload{}, true},
		{"HandRunReport", api.HandRunReport{}, false},
		{"HandRunNode", api.HandRunNode{}, false},
		{"HandRunNodeReport", api.HandRunNodeReport{}, false},
		{"ServiceList", api.ServiceList{}, true},
		{"ServiceSummary", api.ServiceSummary{}, true},
		{"VersionHosts", api.VersionHosts{}, true},
		{"Application", api.Application{}, false},
		{"ApplicationDeployment", api.ApplicationDeployment{}, true},
		{"Event", api.Event{}, true},
		{"Step", api.Step{}, true},
		{"Info", api.Info{}, true},
		{"InfoDetails", api.InfoDetails{}, true},
		{"Replica", api.Replica{}, true},
		{"NodeInfo", api.NodeInfo{}, true},
		{"Health", api.Health{}, true},
		{"AggregateCheck", api.AggregateCheck{}, true},
		{"Check", api.Check{}, true},
		{"Logs", api.Logs{}, true},
		{"LogEntry", api.LogEntry{}, true},
		{"LogReadError", api.LogReadError{}, true},
		{"NodeFailure", api.NodeFailure{}, true},
		{"FailedTask", api.FailedTask{}, true},
		{"FailedRelease", api.FailedRelease{}, true},
		{"Pod", api.Pod{}, true},
		{"Strategy", api.Strategy{}, false},
		{"ScaleRequest", api.ScaleRequest{}, false},
		{"Workload", api.Workload{}, false},
		{"RestartRequest", api.RestartRequest{}, false},
		{"ServiceStatuses", api.ServiceStatuses{}, true},
		{"ServiceStatus", api.ServiceStatus{}, true},
		{"BuildInfo", api.BuildInfo{}, true},
		{"Resources", api.Resources{}, true},
		{"AdhocRequest", api.AdhocRequest{}, false},
		{"AdhocRun", api.AdhocRun{}, true},
		{"CommandResult", api.CommandResult{}, true},
		{"AllowedCommand", api.AllowedCommand{}, true},
		{"Cleanup", api.Cleanup{}, true},
		{"CleanupNode", api.CleanupNode{}, true},
		{"Pruned", api.Pruned{}, true},
		{"ApplyRequest", api.ApplyRequest{}, false},
		{"DeleteRequest", api.DeleteRequest{}, false},
		{"Object", api.Object{}, true},
		{"PodList", api.PodList{}, true},
		{"RevisionList", api.RevisionList{}, true},
		{"Revision", api.Revision{}, true},
		{"WorkloadRollbackRequest", api.WorkloadRollbackRequest{}, false},
		{"PodStatus", api.PodStatus{}, true},
	} {
		schema, ok := s.schemas[c.schema]
		if !ok {
			t.Errorf("docs/openapi.yaml has no schema %s", c.schema)
			continue
		}
		all, always := jsonFields(reflect.TypeOf(c.v))
		props, _ := schema["properties"].(map[string]any)
		var documented []string
		for name := range props {
			documented = append(documented, name)
		}
		sort.Strings(documented)
		if got, want := strings.Join(documented, ","), strings.Join(all, ","); got != want {
			t.Errorf("schema %s has the fields\n  %s\nthe Go type %T has\n  %s", c.schema, got, c.v, want)
		}
		if !c.sent {
			continue
		}
		var required []string
		list, _ := schema["required"].([]any)
		for _, name := range list {
			required = append(required, name.(string))
		}
		sort.Strings(required)
		if got, want := strings.Join(required, ","), strings.Join(always, ","); got != want {
			t.Errorf("schema %s requires\n  %s\nthe Go type %T always sends (no omitempty)\n  %s", c.schema, got, c.v, want)
		}
	}
}

// jsonFields is a struct's JSON field names, and those without omitempty or omitzero, both sorted.
func jsonFields(t reflect.Type) (all, always []string) {
	for i := range t.NumField() {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		all = append(all, name)
		if !strings.Contains(","+opts+",", ",omitempty,") && !strings.Contains(","+opts+",", ",omitzero,") {
			always = append(always, name)
		}
	}
	sort.Strings(all)
	sort.Strings(always)
	return all, always
}

// The request schemas admit what executor/validate.go admits. The patterns are written without
// look-arounds, so Go reads them as any OpenAPI (ECMA-262) tool does.
func TestOpenAPIPatternsAgreeWithTheValidators(t *testing.T) {
	s := loadSpec(t)
	sum := strings.Repeat("ab", 32)
	pkgURL := "https://pkgs.example/demo-v2.tar.gz"
	label := strings.Repeat("a", 63)
	for _, c := range []struct {
		field   string
		path    []string // from DeployRequest: property names, "[]" for items, "*" for additionalProperties
		check   func(string) error
		samples []string
		// looser are values the schema admits and the server refuses: rules no regex says, which the
		// field's description says in words.
		looser []string
	}{
		{"service", []string{"service"}, executor.ValidateService,
			[]string{"demo", "a", "9lives", "demo-api_2.x", "a.", strings.Repeat("a", 63), strings.Repeat("a", 64), "",
				"-demo", ".demo", "_demo", "a..b", "a/b", "a b", "a+b", "a;b", "démo"}, nil},
		{"version", []string{"version"}, executor.ValidateVersion,
			[]string{"v2", "1.2.3+build.4", "2024-01-01_rc1", "v2.", strings.Repeat("v", 128), strings.Repeat("v", 129), "",
				"..", "v..2", "+v", ".v", "v/2", "v 2", "v$2"}, nil},
		{"host", []string{"nodes", "[]"}, executor.ValidateHost,
			[]string{"10.200.0.11", "node-1.example.com", "a", "999.1.1.1", "fe80::1", "FE80::1", "::ffff:10.0.0.1", "fe80::1%eth0",
				label + "." + label + "." + label + "." + label[:61], label + "." + label + "." + label + "." + label[:62],
				strings.Repeat("a", 64), "", "a..b", "-a", "a-", "a_b", "node 1", "h;id", "fe80::1%", "[::1]"},
			[]string{":::", "1:2:3:4:5:6:7:8:9"}},
		{"package_url", []string{"package_url"}, func(v string) error { return executor.ValidatePackage(executor.Package{URL: v, SHA256: sum}) },
			[]string{pkgURL, "http://10.0.0.1:8080/x.tgz?y=1#z", "HTTPS://pkgs.example/x", "https://pkgs.example", "https://pkgs.example/a@b",
				"", "https://", "https:///x", "pkgs.example/x", "ftp://pkgs.example/x", "https://user:pw@pkgs.example/x", "https://pkgs.example/a\nb"},
			[]string{"https://pkgs.example/{{ x }}", "http://pkgs.example:port/x"}},
		{"sha256", []string{"sha256"}, func(v string) error { return executor.ValidatePackage(executor.Package{URL: pkgURL, SHA256: v}) },
			[]string{sum, strings.ToUpper(sum), sum[1:], sum + "a", strings.Repeat("g", 64), ""}, nil},
		{"health.http_path", []string{"health", "http_path"}, func(v string) error { return executor.ValidateHealth(executor.HealthCheck{HTTPPath: v}) },
			[]string{"/health", "/", "/ä", "/a{b}", "/a{", "/a?b=1", "health", "/{{x}}", "/{%x", "/{#x", "/a b", `/a"b`, "/a'b", "/a`b", `/a\b`, "/a\nb", "/a\u0085b"}, nil},
		{"unit.exec", []string{"unit", "exec"}, func(v string) error { return executor.ValidateUnit(executor.Unit{Exec: v}) },
			[]string{"bin/demo", "demo", "_x/y.z+1", "bin/./demo", "bin.", strings.Repeat("a", 255), strings.Repeat("a", 256),
				"bin/../x", "../x", "/bin/demo", ".x", "bin/demo ", "bin/$x"}, nil},
		{"unit.args", []string{"unit", "args"}, func(v string) error { return executor.ValidateUnit(executor.Unit{Args: v}) },
			[]string{"-addr :18080", "", `"quoted" and \ fine`, "{x}", "x{", "{{x}}", "a{%b", "a{#", "a\nb", "a\tb", "a\u0085b"}, nil},
		{"unit.env values", []string{"unit", "env", "*"}, func(v string) error { return executor.ValidateUnit(executor.Unit{Env: map[string]string{"K": v}}) },
			[]string{"v", "", "a b", "{x}", `a"b`, `a\b`, "{{x}}", "a\x00b"}, nil},
	} {
		schema := s.property(t, "DeployRequest", c.path...)
		looser := map[string]bool{}
		for _, v := range c.looser {
			looser[v] = true
		}
		for _, v := range append(append([]string{}, c.samples...), c.looser...) {
			admitted, err := s.admits(t, schema, v), c.check(v)
			switch {
			case looser[v] && (!admitted || err == nil):
				t.Errorf("%s %q: listed as admitted by the schema and refused by the server, but the schema admits it: %v, the server: %v; update the test", c.field, v, admitted, err)
			case !looser[v] && admitted && err != nil:
				t.Errorf("%s %q: the schema admits it, the server refuses it: %v", c.field, v, err)
			case !looser[v] && !admitted && err == nil:
				t.Errorf("%s %q: the server accepts it, the schema does not", c.field, v)
			}
		}
	}
}

// property walks from a component schema through $refs, properties, items ("[]") and additionalProperties ("*").
func (s *apiSpec) property(t *testing.T, schema string, path ...string) map[string]any {
	t.Helper()
	cur := s.schemas[schema]
	for _, step := range path {
		cur = s.deref(cur)
		var next any
		switch step {
		case "[]":
			next = cur["items"]
		case "*":
			next = cur["additionalProperties"]
		default:
			props, _ := cur["properties"].(map[string]any)
			next = props[step]
		}
		m, ok := next.(map[string]any)
		if !ok {
			t.Fatalf("schema %s has no %s", schema, strings.Join(path, "."))
		}
		cur = m
	}
	return s.deref(cur)
}

func (s *apiSpec) deref(schema map[string]any) map[string]any {
	for {
		ref, ok := schema["$ref"].(string)
		if !ok {
			return schema
		}
		schema = s.schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
	}
}

// admits reports whether a string schema admits v: its pattern, its length bounds, any of its anyOf.
func (s *apiSpec) admits(t *testing.T, schema map[string]any, v string) bool {
	t.Helper()
	schema = s.deref(schema)
	if alts, ok := schema["anyOf"].([]any); ok {
		one := false
		for _, alt := range alts {
			one = one || s.admits(t, alt.(map[string]any), v)
		}
		if !one {
			return false
		}
	}
	if p, ok := schema["pattern"].(string); ok {
		re, err := regexp.Compile(p)
		if err != nil {
			t.Fatalf("pattern %q: %v (write it without look-arounds, so that Go and ECMA-262 read it alike)", p, err)
		}
		if !re.MatchString(v) {
			return false
		}
	}
	n := utf8.RuneCountInString(v)
	if most, ok := schema["maxLength"].(int); ok && n > most {
		return false
	}
	if least, ok := schema["minLength"].(int); ok && n < least {
		return false
	}
	return true
}
