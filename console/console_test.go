package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func serveConsole(t *testing.T, method, path string, header map[string]string) *http.Response {
	t.Helper()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	Mount(api).ServeHTTP(rec, req)
	return rec.Result()
}

// Every file under assets/ on disk is embedded and served with its own type, the security headers
// and a cache header, and the page loads every script and style it names.
func TestEveryAssetIsEmbeddedAndServedWithItsType(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := filepath.Glob("assets/*")
	if err != nil || len(onDisk) == 0 {
		t.Fatalf("assets on disk: %v %v", onDisk, err)
	}
	wantType := map[string]string{".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
	for _, p := range onDisk {
		name := filepath.Base(p)
		if _, ok := files[name]; !ok {
			t.Errorf("%s is on disk but not embedded", name)
			continue
		}
		resp := serveConsole(t, "GET", Prefix+name, nil)
		body, _ := io.ReadAll(resp.Body)
		disk, _ := os.ReadFile(p)
		if resp.StatusCode != 200 || string(body) != string(disk) {
			t.Errorf("GET %s = %d, %d bytes; want 200 and the file's %d bytes", name, resp.StatusCode, len(body), len(disk))
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, wantType[filepath.Ext(name)]) || wantType[filepath.Ext(name)] == "" {
			t.Errorf("GET %s Content-Type = %q", name, ct)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") {
			t.Errorf("GET %s CSP = %q, want 'self' only", name, csp)
		}
		if resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("ETag") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s headers = %v", name, resp.Header)
		}
		if again := serveConsole(t, "GET", Prefix+name, map[string]string{"If-None-Match": resp.Header.Get("ETag")}); again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag = %d, want 304", name, again.StatusCode)
		}
	}
	index := serveConsole(t, "GET", Prefix, nil)
	body, _ := io.ReadAll(index.Body)
	if index.StatusCode != 200 || !strings.HasPrefix(index.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /ui/ = %d %s", index.StatusCode, index.Header.Get("Content-Type"))
	}
	// Every file the page and the modules name must be one the console serves.
	refs := regexp.MustCompile(`(?:src|href)="([a-z]+\.(?:js|css|svg))"|from '\./([a-z]+\.js)'`)
	named := string(body)
	for _, p := range onDisk {
		if strings.HasSuffix(p, ".js") {
			b, _ := os.ReadFile(p)
			named += string(b)
		}
	}
	for _, m := range refs.FindAllStringSubmatch(named, -1) {
		if ref := m[1] + m[2]; files[ref] == "" {
			t.Errorf("the console names %s, which it does not serve", ref)
		}
	}
}

func TestConsoleRoutes(t *testing.T) {
	for _, c := range []struct {
		method, path string
		code         int
		location     string
	}{
		{"GET", "/ui", http.StatusMovedPermanently, "/ui/"},
		{"HEAD", "/ui/", http.StatusOK, ""},
		{"POST", "/ui/", http.StatusMethodNotAllowed, ""},
		{"GET", "/ui/missing.js", http.StatusNotFound, ""},
		{"GET", "/ui/../server.go", http.StatusNotFound, ""},
		{"GET", "/api/v1/deployments", http.StatusTeapot, ""}, // everything else is the API's
		{"GET", "/uix", http.StatusTeapot, ""},
	} {
		resp := serveConsole(t, c.method, c.path, nil)
		if resp.StatusCode != c.code || resp.Header.Get("Location") != c.location {
			t.Errorf("%s %s = %d Location %q, want %d %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Location"), c.code, c.location)
		}
	}
}

// Data from the API is rendered as text only: no script ever parses markup, so no field of a record
// (a task's output, a journal line) can become markup, and eval-like calls are absent too.
func TestScriptsNeverParseMarkup(t *testing.T) {
	forbidden := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|createContextualFragment|DOMParser|srcdoc`)
	scripts, _ := filepath.Glob("assets/*.js")
	pages, _ := filepath.Glob("assets/*.html")
	if len(scripts) == 0 {
		t.Fatal("no scripts under assets/")
	}
	for _, p := range append(scripts, pages...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := forbidden.FindString(line); m != "" {
				t.Errorf("%s:%d uses %s: build elements with dom.js's h() (text nodes) instead", p, i+1, m)
			}
		}
		// Inline scripts, styles and handlers would need 'unsafe-inline' under the CSP.
		if strings.HasSuffix(p, ".html") && regexp.MustCompile(`<script>|<style|\son[a-z]+=`).Match(b) {
			t.Errorf("%s has an inline script, style or handler: the CSP refuses them", p)
		}
	}
}
