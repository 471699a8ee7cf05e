package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
)

// deployApplications deploys the applications a file lists as one deployment. The flags that describe
// one service's deploy are refused beside it: each application says its own.
func deployApplications(ctx context.Context, o clientOpts, fs *flag.FlagSet, file string, shared api.DeployRequest, detach bool) (bool, error) {
	var own []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "service", "version", "nodes", "package-url", "sha256", "exec", "exec-args", "workloads", "image", "env", "config",
			"health-port", "health-path", "health-status", "tcp-port", "health-retries", "health-delay", "health-interval", "health-stable",
			"unit-env", "stable-seconds":
			own = append(own, "--"+f.Name)
		}
	})
	if len(own) > 0 {
		return false, badApplications("each application gives its own service, version, targets and settings: drop %s", strings.Join(own, ", "))
	}
	apps, err := readApplications(file)
	if err != nil {
		return false, err
	}
	body := shared
	body.Applications = apps
	if len(apps[0].Workloads) > 0 {
		body.Platform = api.PlatformK8s
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	return o.start(ctx, c, func() (*api.Accepted, error) { return c.Deploy(ctx, body) }, detach, api.StateSuccess)
}

// readApplications reads a JSON list of applications from file (- : stdin), refusing a field the API
// does not know (a typo must not be dropped silently).
func readApplications(file string) ([]api.Application, error) {
	data, err := readFileOrStdin(file)
	if err != nil {
		return nil, badApplications("%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var apps []api.Application
	if err := dec.Decode(&apps); err != nil {
		return nil, badApplications("%s is not a JSON list of applications: %v", file, err)
	}
	if len(apps) == 0 {
		return nil, badApplications("%s lists no application", file)
	}
	return apps, nil
}

// badApplications is a mistake in --applications: bad input (exit 2).
func badApplications(format string, args ...any) error {
	return &executor.ValidationError{Field: "--applications", Reason: fmt.Sprintf(format, args...)}
}

// keyValue is a flag function that puts NAME=VALUE into m.
func keyValue(m map[string]string) func(string) error {
	return func(v string) error {
		name, value, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return fmt.Errorf("%q: want NAME=VALUE", v)
		}
		if _, dup := m[name]; dup {
			return fmt.Errorf("%s is given twice", name)
		}
		m[name] = value
		return nil
	}
}

// nonEmpty is m, or nil when it has nothing (left out of the request).
func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// readFileOrStdin reads a request file a command was given, or standard input for "-" (1 MiB at most).
func readFileOrStdin(file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	}
	return os.ReadFile(file)
}
