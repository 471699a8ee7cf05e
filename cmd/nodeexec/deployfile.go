package main

import (
	"bytes"
	"encoding/json"
	"flag"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
)

// A deploy request from its flags, and from a file (--from-file) that the flags given beside it override.

// deployExtras are the deploy request's fields that executor.DeployRequest does not carry.
type deployExtras struct {
	key, by        string
	batchSize      int
	stopOnFailure  bool
	maxUnavailable int
	env, config    map[string]string
}

// deployBody is the request the flags make: for Kubernetes workloads when they name some, else for
// physical nodes.
func deployBody(req executor.DeployRequest, x deployExtras) api.DeployRequest {
	body := api.DeployRequest{Service: req.Service, Version: req.Version, IdempotencyKey: x.key, RequestedBy: x.by,
		Environment: nonEmpty(x.env), Config: nonEmpty(x.config), BatchSize: x.batchSize, StopOnFailure: x.stopOnFailure,
		MaxUnavailable: x.maxUnavailable}
	if len(req.Workloads) > 0 {
		body.Platform, body.Workloads, body.Image = api.PlatformK8s, wireWorkloads(req.Workloads), req.Image
		if req.Strategy != (executor.Strategy{}) {
			strategy := api.Strategy(req.Strategy)
			body.Strategy = &strategy
		}
		return body
	}
	body.Nodes, body.PackageURL, body.SHA256 = hostsOf(req.Nodes), req.Package.URL, req.Package.SHA256
	body.Delivery = api.Delivery(req.Delivery)
	body.Unit = api.Unit{Exec: req.Unit.Exec, Args: req.Unit.Args, Env: nonEmpty(req.Unit.Env)}
	body.Health = wireHealth(req.Health)
	return body
}

// overlayDeployFile is the request file holds with the fields of the flags given (fs.Visit) taken from
// the flags. requested_by defaults to the flag's default ($USER) when the file has none.
func overlayDeployFile(file string, req executor.DeployRequest, x deployExtras, fs *flag.FlagSet) (api.DeployRequest, error) {
	body, err := readDeployRequest(file)
	if err != nil {
		return body, err
	}
	// Every part of the flags' request, so that one flag can override one field of a part.
	flags := deployBody(req, x)
	flags.Platform, flags.Workloads, flags.Image = api.PlatformK8s, wireWorkloads(req.Workloads), req.Image
	strategy, health := api.Strategy(req.Strategy), fullHealth(req.Health)
	flags.Strategy, flags.Health = &strategy, &health
	fs.Visit(func(f *flag.Flag) {
		if set, ok := deployFlagFields[f.Name]; ok {
			set(&body, &flags)
		}
	})
	if body.RequestedBy == "" {
		body.RequestedBy = x.by
	}
	return body, nil
}

// readDeployRequest reads a deploy request from file (- : stdin), refusing a field the API does not
// know (a typo must not be dropped silently).
func readDeployRequest(file string) (api.DeployRequest, error) {
	var body api.DeployRequest
	data, err := readFileOrStdin(file)
	if err != nil {
		return body, &executor.ValidationError{Field: "--from-file", Reason: err.Error()}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return body, &executor.ValidationError{Field: "--from-file", Reason: file + " is not a deploy request as POST /api/v1/deployments takes it: " + err.Error()}
	}
	return body, nil
}

// fullHealth is h as the API takes it, whatever it checks.
func fullHealth(h executor.HealthCheck) api.HealthCheck {
	return api.HealthCheck{HTTPPort: h.HTTPPort, HTTPPath: h.HTTPPath, HTTPStatus: h.HTTPStatus, TCPPort: h.TCPPort, Retries: h.Retries,
		DelaySeconds: int(h.Delay.Seconds()), IntervalMS: int(h.Interval.Milliseconds()), StableSeconds: int(h.Stable.Seconds())}
}

// deployFlagFields copies, for each deploy flag, the request's field it sets from the flags' request
// (src) into dst. A test holds it to deploy's flags: each is here, or is no field of the request.
var deployFlagFields = map[string]func(dst, src *api.DeployRequest){
	"service":               func(d, s *api.DeployRequest) { d.Service = s.Service },
	"version":               func(d, s *api.DeployRequest) { d.Version = s.Version },
	"nodes":                 func(d, s *api.DeployRequest) { d.Nodes = s.Nodes },
	"package-url":           func(d, s *api.DeployRequest) { d.PackageURL = s.PackageURL },
	"sha256":                func(d, s *api.DeployRequest) { d.SHA256 = s.SHA256 },
	"delivery":              func(d, s *api.DeployRequest) { d.Delivery = s.Delivery },
	"exec":                  func(d, s *api.DeployRequest) { d.Unit.Exec = s.Unit.Exec },
	"exec-args":             func(d, s *api.DeployRequest) { d.Unit.Args = s.Unit.Args },
	"unit-env":              func(d, s *api.DeployRequest) { d.Unit.Env = s.Unit.Env },
	"workloads":             func(d, s *api.DeployRequest) { d.Workloads, d.Platform = s.Workloads, s.Platform },
	"image":                 func(d, s *api.DeployRequest) { d.Image = s.Image },
	"idempotency-key":       func(d, s *api.DeployRequest) { d.IdempotencyKey = s.IdempotencyKey },
	"requested-by":          func(d, s *api.DeployRequest) { d.RequestedBy = s.RequestedBy },
	"batch-size":            func(d, s *api.DeployRequest) { d.BatchSize = s.BatchSize },
	"stop-on-failure":       func(d, s *api.DeployRequest) { d.StopOnFailure = s.StopOnFailure },
	"max-unavailable-nodes": func(d, s *api.DeployRequest) { d.MaxUnavailable = s.MaxUnavailable },
	"env":                   func(d, s *api.DeployRequest) { d.Environment = s.Environment },
	"config":                func(d, s *api.DeployRequest) { d.Config = s.Config },

	"health-port":     health(func(d, s *api.HealthCheck) { d.HTTPPort = s.HTTPPort }),
	"health-path":     health(func(d, s *api.HealthCheck) { d.HTTPPath = s.HTTPPath }),
	"health-status":   health(func(d, s *api.HealthCheck) { d.HTTPStatus = s.HTTPStatus }),
	"tcp-port":        health(func(d, s *api.HealthCheck) { d.TCPPort = s.TCPPort }),
	"health-retries":  health(func(d, s *api.HealthCheck) { d.Retries = s.Retries }),
	"health-delay":    health(func(d, s *api.HealthCheck) { d.DelaySeconds = s.DelaySeconds }),
	"health-interval": health(func(d, s *api.HealthCheck) { d.IntervalMS = s.IntervalMS }),
	"health-stable":   health(func(d, s *api.HealthCheck) { d.StableSeconds = s.StableSeconds }),
	"stable-seconds":  health(func(d, s *api.HealthCheck) { d.StableSeconds = s.StableSeconds }),

	"strategy":                  strategy(func(d, s *api.Strategy) { d.Type = s.Type }),
	"max-surge":                 strategy(func(d, s *api.Strategy) { d.MaxSurge = s.MaxSurge }),
	"max-unavailable":           strategy(func(d, s *api.Strategy) { d.MaxUnavailable = s.MaxUnavailable }),
	"min-ready-seconds":         strategy(func(d, s *api.Strategy) { d.MinReadySeconds = s.MinReadySeconds }),
	"progress-deadline-seconds": strategy(func(d, s *api.Strategy) { d.ProgressDeadlineSeconds = s.ProgressDeadlineSeconds }),
	"switch-service":            strategy(func(d, s *api.Strategy) { d.Service = s.Service }),
	"verify-seconds":            strategy(func(d, s *api.Strategy) { d.VerifySeconds = s.VerifySeconds }),
}

// health copies one field of the health check, starting from the flags' whole check (their defaults)
// when the file has none.
func health(set func(d, s *api.HealthCheck)) func(d, s *api.DeployRequest) {
	return func(d, s *api.DeployRequest) {
		if d.Health == nil {
			h := *s.Health
			d.Health = &h
		}
		set(d.Health, s.Health)
	}
}

func strategy(set func(d, s *api.Strategy)) func(d, s *api.DeployRequest) {
	return func(d, s *api.DeployRequest) {
		if d.Strategy == nil {
			d.Strategy = &api.Strategy{}
		}
		set(d.Strategy, s.Strategy)
	}
}
