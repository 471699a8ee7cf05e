// Package console is the operators' web console: plain HTML, CSS and JavaScript embedded in the binary
// and served by `nodeexec serve` at /ui/. It holds no state and calls nothing but the server's own API
// (with the token the operator enters), so it needs no build step and fetches nothing at run time.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// Prefix is where the console is served.
const Prefix = "/ui/"

//go:embed assets
var embedded embed.FS

// contentTypes are the types of the files the console ships; a file of any other kind is not served,
// so nothing is ever sniffed.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// securityHeaders go on every answer: the page loads scripts, styles and data from this server only
// (the API's data is rendered as text, and CSP stops any injected script that slipped past), cannot be
// framed, and sends no referrer.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"X-Frame-Options":        "DENY",
}

// asset is one embedded file, with what its answer needs.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// Files are the console's files by their path under Prefix ("" is index.html).
func Files() (map[string]string, error) {
	assets, err := load()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(assets))
	for name, a := range assets {
		out[name] = a.contentType
	}
	return out, nil
}

func load() (map[string]asset, error) {
	assets := map[string]asset{}
	err := fs.WalkDir(embedded, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("console asset %s: no content type for %q files", p, path.Ext(p))
		}
		body, err := embedded.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		assets[strings.TrimPrefix(p, "assets/")] = asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return assets, err
}

// Mount serves the console at /ui/ (and redirects /ui there) beside next, which serves the rest.
func Mount(next http.Handler) http.Handler {
	assets, err := load()
	if err != nil {
		panic(err) // the embedded files are fixed at build time; the unit test loads them
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == strings.TrimSuffix(Prefix, "/"):
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		case strings.HasPrefix(r.URL.Path, Prefix):
			serve(w, r, assets)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func serve(w http.ResponseWriter, r *http.Request, assets map[string]asset) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the console is read with GET", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, Prefix)
	if name == "" {
		name = "index.html"
	}
	a, ok := assets[name]
	if !ok {
		http.Error(w, "no such file in the console: "+name, http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	// The file names carry no version, so the browser asks again each time; the ETag makes that a 304
	// until a new binary serves new files.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", fmt.Sprint(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(a.body)
	}
}
