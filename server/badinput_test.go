package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/store"
)

// hostileCase is one request that must be refused with a 4xx JSON error naming field ("": none), before
// anything is recorded or run.
type hostileCase struct {
	name, method, path, body string
	code                     int
	field                    string
}

// hostileDeploys are deploy requests a careless or hostile client may send: look-alike and invisible
// characters, NUL bytes, overlong fields, numbers out of range in every numeric field (and past what a
// Duration holds), credentials in the package URL, and newlines that would add directives to the unit.
func hostileDeploys() []hostileCase {
	base := deployJSON(`"10.0.0.1"`, "")
	sub := func(old, new string) string {
		if !strings.Contains(base, old) {
			panic("no " + old + " in the base request")
		}
		return strings.Replace(base, old, new, 1)
	}
	with := func(extra string) string { return deployJSON(`"10.0.0.1"`, extra) }
	long := func(n int) string { return strings.Repeat("a", n) }
	url := "https://pkgs.example/demo-v2.tgz"
	many := make([]string, 501)
	for i := range many {
		many[i] = fmt.Sprintf(`"10.0.%d.%d"`, i/250, i%250+1)
	}
	env := make([]string, 101)
	for i := range env {
		env[i] = fmt.Sprintf(`"V%d":"x"`, i)
	}
	deploy := func(name, body string, field string) hostileCase {
		return hostileCase{name: name, method: "POST", path: "/api/v1/deployments", body: body, code: 400, field: field}
	}
	return []hostileCase{
		// Look-alikes, invisible characters and NUL bytes in names.
		deploy("cyrillic e in service", sub(`"demo"`, `"dеmo"`), "service"),
		deploy("zero-width space in service", sub(`"demo"`, `"de\u200bmo"`), "service"),
		deploy("NUL in service", sub(`"demo"`, `"demo\u0000"`), "service"),
		deploy("fullwidth digit in version", sub(`"v2"`, `"v２"`), "version"),
		deploy("fullwidth slashes in version", sub(`"v2"`, `"v2／..／..／etc"`), "version"),
		deploy("NUL in version", sub(`"v2"`, `"v2\u0000"`), "version"),
		deploy("cyrillic letter in host", deployJSON(`"һost1.example"`, ""), "nodes[0].host"),
		deploy("NUL in host", deployJSON(`"10.0.0.1\u0000"`, ""), "nodes[0].host"),
		deploy("NUL in package_url", sub(url, url+`\u0000`), "package_url"),
		deploy("bidi override in unit args", with(`,"unit":{"args":"-mode \u202esafe"}`), "unit.args"),
		deploy("cyrillic P in an env name", with(`,"unit":{"env":{"РATH":"/bin"}}`), "unit.env"),
		deploy("NUL in requested_by", with(`,"requested_by":"alice\u0000root"`), "requested_by"),
		deploy("newline in idempotency_key", with(`,"idempotency_key":"plan-1\nplan-2"`), "idempotency_key"),
		// Overlong fields.
		deploy("service of 64 characters", sub(`"demo"`, `"`+long(64)+`"`), "service"),
		deploy("version of 129 characters", sub(`"v2"`, `"`+long(129)+`"`), "version"),
		deploy("host of 254 characters", deployJSON(`"`+strings.Repeat("abcdefgh.", 28)+`ab"`, ""), "nodes[0].host"),
		deploy("host label of 64 characters", deployJSON(`"`+long(64)+`.example"`, ""), "nodes[0].host"),
		deploy("idempotency_key of 201 characters", with(`,"idempotency_key":"`+long(201)+`"`), "idempotency_key"),
		deploy("requested_by of 201 characters", with(`,"requested_by":"`+long(201)+`"`), "requested_by"),
		deploy("package_url of 2049 characters", sub(url, "https://pkgs.example/"+long(2049-21)), "package_url"),
		deploy("unit args of 4097 characters", with(`,"unit":{"args":"`+long(4097)+`"}`), "unit.args"),
		deploy("env value of 4097 characters", with(`,"unit":{"env":{"A":"`+long(4097)+`"}}`), "unit.env.A"),
		deploy("101 env variables", with(`,"unit":{"env":{`+strings.Join(env, ",")+`}}`), "unit.env"),
		deploy("health path of 1025 characters", with(`,"health":{"http_port":80,"http_path":"/`+long(1024)+`"}`), "health.http_path"),
		deploy("501 nodes", deployJSON(strings.Join(many, ","), ""), "nodes"),
		// Numbers out of range, in every numeric field.
		deploy("negative http_port", with(`,"health":{"http_port":-1}`), "health.http_port"),
		deploy("http_port past 65535", with(`,"health":{"http_port":65536}`), "health.http_port"),
		deploy("negative tcp_port", with(`,"health":{"tcp_port":-80}`), "health.tcp_port"),
		deploy("tcp_port past 65535", with(`,"health":{"tcp_port":70000}`), "health.tcp_port"),
		deploy("http_status 99", with(`,"health":{"http_port":80,"http_status":99}`), "health.http_status"),
		deploy("http_status 600", with(`,"health":{"http_port":80,"http_status":600}`), "health.http_status"),
		deploy("negative retries", with(`,"health":{"retries":-1}`), "health.retries"),
		deploy("retries past 1000", with(`,"health":{"retries":1001}`), "health.retries"),
		deploy("negative delay", with(`,"health":{"delay_seconds":-1}`), "health.delay"),
		deploy("delay past an hour", with(`,"health":{"delay_seconds":3601}`), "health.delay"),
		deploy("delay that overflows a duration", with(`,"health":{"delay_seconds":18446744074}`), "health.delay"),
		deploy("negative interval", with(`,"health":{"interval_ms":-5}`), "health.interval_ms"),
		deploy("interval past 10 s", with(`,"health":{"interval_ms":10001}`), "health.interval_ms"),
		deploy("stable that wraps round to 0.3 s", with(`,"health":{"stable_seconds":18446744074}`), "health.stable_seconds"),
		deploy("negative stable", with(`,"health":{"stable_seconds":-1}`), "health.stable_seconds"),
		deploy("negative batch_size", with(`,"batch_size":-1`), "batch_size"),
		deploy("batch_size past 500", with(`,"batch_size":501`), "batch_size"),
		deploy("port past int64", with(`,"health":{"http_port":99999999999999999999}`), ""),
		deploy("fractional port", with(`,"health":{"http_port":80.5}`), ""),
		deploy("port as a string", with(`,"health":{"http_port":"80"}`), ""),
		// Credentials in the package URL.
		deploy("package_url with user:pass@", sub(url, "https://user:pass@pkgs.example/demo-v2.tgz"), "package_url"),
		deploy("package_url with user@", sub(url, "https://deploy@pkgs.example/demo-v2.tgz"), "package_url"),
		deploy("package_url with an encoded password", sub(url, "https://u:p%40ss@pkgs.example/demo-v2.tgz"), "package_url"),
		// Newlines that would add directives to the unit file.
		deploy("newline and a directive in unit args", with(`,"unit":{"args":"-addr :80\nExecStartPre=/bin/sh -c id"}`), "unit.args"),
		deploy("carriage return in unit args", with(`,"unit":{"args":"-addr :80\rUser=root"}`), "unit.args"),
		deploy("line separator in unit args", with(`,"unit":{"args":"-addr :80\u2028User=root"}`), "unit.args"),
		deploy("newline and a section in an env value", with(`,"unit":{"env":{"A":"x\n[Service]\nUser=root"}}`), "unit.env.A"),
		deploy("newline in an env name", with(`,"unit":{"env":{"A\nUser":"root"}}`), "unit.env"),
		deploy("quote that ends Environment= in an env value", with(`,"unit":{"env":{"A":"x\" User=root \""}}`), "unit.env.A"),
		deploy("newline in unit exec", with(`,"unit":{"exec":"bin/demo\nUser=root"}`), "unit.exec"),
		deploy("newline in the health path", with(`,"health":{"http_port":80,"http_path":"/health\nHost: evil"}`), "health.http_path"),
		deploy("next-line character in an env value", with(`,"unit":{"env":{"A":"x\u0085User=root"}}`), "unit.env.A"),
	}
}

// hostileOthers are the other requests that record something, and listings' numbers out of range.
func hostileOthers() []hostileCase {
	restart := func(name, body, field string) hostileCase {
		return hostileCase{name: name, method: "POST", path: "/api/v1/restart", body: body, code: 400, field: field}
	}
	get := func(name, path, field string) hostileCase {
		return hostileCase{name: name, method: "GET", path: path, code: 400, field: field}
	}
	return []hostileCase{
		restart("restart: NUL in service", `{"service":"demo\u0000","nodes":["10.0.0.1"]}`, "service"),
		restart("restart: look-alike host", `{"service":"demo","nodes":["10.0.0.１"]}`, "nodes[0].host"),
		restart("restart: http_port past 65535", `{"service":"demo","nodes":["10.0.0.1"],"health":{"http_port":65536}}`, "health.http_port"),
		restart("restart: batch_size past 500", `{"service":"demo","nodes":["10.0.0.1"],"batch_size":501}`, "batch_size"),
		restart("restart: idempotency_key of 201 characters", `{"service":"demo","nodes":["10.0.0.1"],"idempotency_key":"`+strings.Repeat("k", 201)+`"}`, "idempotency_key"),
		get("list: limit 0", "/api/v1/deployments?limit=0", "limit"),
		get("list: limit past 200", "/api/v1/deployments?limit=201", "limit"),
		get("list: limit past int64", "/api/v1/deployments?limit=99999999999999999999", "limit"),
		get("cleanups: negative limit", "/api/v1/cleanups?limit=-1", "limit"),
		get("nodes: look-alike service", "/api/v1/nodes?service=d%D0%B5mo", "service"),
	}
}

// Every hostile request is refused with a clear 4xx JSON error naming the field, and leaves no trace:
// no node record, no deployment, no idempotency key, no run.
func TestHostileInputIsRefusedAndLeavesNoTrace(t *testing.T) {
	f := newFixture(t, withOps, func(c *Config) { c.MaxBody = 1 << 20 })
	cases := append(hostileDeploys(), hostileOthers()...)
	keys := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := c.body
			// Each POST carries an idempotency key of its own, which must not be kept either (unless the
			// key is what is wrong with it).
			if c.method == "POST" && c.field != "" && !strings.Contains(body, `"idempotency_key"`) {
				body = strings.TrimSuffix(body, "}") + fmt.Sprintf(`,"idempotency_key":"hostile-%d"}`, keys)
				keys++
			}
			code, b := f.do(t, c.method, c.path, body)
			msg, _ := b["error"].(string)
			if code != c.code || msg == "" || b["code"] == nil {
				t.Fatalf("= %d %v, want %d with an error body", code, b, c.code)
			}
			if b["field"] != nil && b["field"] != c.field || c.field != "" && b["field"] != c.field {
				t.Errorf("field = %v, want %q (%s)", b["field"], c.field, msg)
			}
			if c.field != "" && !strings.HasPrefix(msg, c.field+": ") {
				t.Errorf("error %q does not start with the field", msg)
			}
		})
	}
	if len(cases) < 60 {
		t.Errorf("%d hostile cases, want at least 60", len(cases))
	}
	ctx := context.Background()
	if list, _, err := f.st.ListDeployments(ctx, store.DeploymentFilter{Limit: 10}); err != nil || len(list) != 0 {
		t.Errorf("hostile requests recorded %d deployments (%v)", len(list), err)
	}
	for _, svc := range []string{"demo", "dеmo"} {
		if nodes, err := f.st.Nodes(ctx, svc); err != nil || len(nodes) != 0 {
			t.Errorf("hostile requests left %d node records of %s (%v)", len(nodes), svc, err)
		}
	}
	for i := range keys {
		if _, err := f.st.KeyReservedAt(ctx, fmt.Sprintf("hostile-%d", i)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("hostile request %d kept its idempotency key: %v", i, err)
		}
	}
	select {
	case id := <-f.exec.started:
		t.Fatalf("a hostile request ran (%s)", id)
	case id := <-f.ops().restartStarted:
		t.Fatalf("a hostile restart ran (%s)", id)
	default:
	}
	if code, _ := f.do(t, "GET", "/readyz", ""); code != http.StatusOK {
		t.Errorf("the server after the hostile requests: readyz %d", code)
	}
}
