// Command demo-service is the service the tests and the demo deploy: an HTTP server whose /health
// reports the version baked in at build time. A build with -X main.broken=true starts and listens, but
// its health check fails, which is what a deploy's verify must catch. DEMO_HEALTH_DELAY (a Go
// duration) makes /health answer only after that long: a health check that hangs. With -crash it exits
// with status 1 at once, before it listens: under systemd's Restart=on-failure, a release that crash-loops.
//
//	go build -ldflags "-X main.version=v2" ./hack/demo-service
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

var (
	version = "dev"
	broken  = "false"
)

func main() {
	addr := flag.String("addr", envOr("DEMO_ADDR", ":8080"), "listen address")
	crash := flag.Bool("crash", false, "exit 1 at once (a release that crash-loops)")
	flag.Parse()
	if *crash {
		log.Fatalf("demo %s: crashing at start (-crash)", version)
	}
	healthDelay, err := time.ParseDuration(envOr("DEMO_HEALTH_DELAY", "0s"))
	if err != nil {
		log.Fatalf("DEMO_HEALTH_DELAY: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(healthDelay):
		case <-r.Context().Done():
			return
		}
		status, code := "ok", http.StatusOK
		if broken == "true" {
			status, code = "broken", http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"status": status, "version": version})
	})
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, version) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello from demo %s\n", version) })

	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("demo %s (broken=%s) listening on %s", version, broken, *addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
