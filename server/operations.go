package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// The physical operations beside deploys: a restart is recorded and run like a deployment (it holds its
// nodes, so it never runs beside a deploy to them); reading a service's unit and running an allow-listed
// command are answered at once, from one ansible-playbook run over the nodes asked for.

// createRestart starts a restart of a service on physical nodes: recorded and run like a deployment,
// verified like one (unit active, then the health checks), leaving every node's version as it is.
func (s *Server) createRestart(c *gin.Context) {
	var body api.RestartRequest
	if !s.decodeStrict(c, &body, bodyRequired) {
		return
	}
	if _, ok := physicalAs[executor.Restarter](s, c, "restart a service"); !ok {
		return
	}
	if !batchFits(c, body.BatchSize) {
		return
	}
	id := "d-" + randomID()
	req := executor.RestartRequest{DeploymentID: id, Service: body.Service, Nodes: nodeList(body.Nodes), Health: healthOf(body.Health)}
	if err := req.Validate(); err != nil {
		s.failErr(c, err)
		return
	}
	d := engine.Restart(req, store.Batch{Size: body.BatchSize, StopOnFailure: body.StopOnFailure})
	d.RequestedBy, d.IdempotencyKey = body.RequestedBy, body.IdempotencyKey
	s.submit(c, d)
}

// serviceStatus reads the service's unit and record on the nodes listed in ?nodes=h1,h2 (one run).
func (s *Server) serviceStatus(c *gin.Context) {
	var hosts []string
	for _, h := range strings.Split(c.Query("nodes"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	statuses, ok := s.readServices(c, c.Param("service"), hosts)
	if ok {
		c.JSON(http.StatusOK, api.ServiceStatuses{Service: c.Param("service"), Nodes: listOf(statuses, renderServiceStatus)})
	}
}

// nodeService reads the service's unit and record on one node.
func (s *Server) nodeService(c *gin.Context) {
	statuses, ok := s.readServices(c, c.Param("service"), []string{c.Param("host")})
	if ok {
		c.JSON(http.StatusOK, renderServiceStatus(statuses[0]))
	}
}

// readServices runs status.yml over the hosts now; false means it answered with an error.
func (s *Server) readServices(c *gin.Context, service string, hosts []string) ([]executor.ServiceStatus, bool) {
	req := executor.StatusRequest{Service: service, Nodes: nodeList(hosts)}
	if err := req.Validate(); err != nil {
		s.failErr(c, err)
		return nil, false
	}
	if !nodesFit(c, req.Nodes) {
		return nil, false
	}
	inspector, ok := physicalAs[executor.ServiceInspector](s, c, "read a service's unit")
	if !ok {
		return nil, false
	}
	ctx, done, ok := s.inspection(c)
	if !ok {
		return nil, false
	}
	defer done()
	statuses, err := inspector.ServiceStatus(ctx, req)
	if err != nil {
		s.runFailed(c, "reading the service on the nodes", err)
		return nil, false
	}
	return statuses, true
}

// listCommands shows the allow-list.
func (s *Server) listCommands(c *gin.Context) {
	out := []api.AllowedCommand{}
	for _, name := range s.cfg.Commands.Names() {
		out = append(out, api.AllowedCommand{Name: name, Argv: s.cfg.Commands[name], Service: s.cfg.Commands.Uses(name, executor.PlaceholderService)})
	}
	c.JSON(http.StatusOK, api.CommandList{Commands: out})
}

// runCommand runs one allow-listed command on the nodes and answers with each node's output. The body
// names the command; a field that is not name, nodes or service is refused, so no free text reaches a
// node except a validated service name in place of a whole {service} argument.
func (s *Server) runCommand(c *gin.Context) {
	var body api.AdhocRequest
	if !s.decodeStrict(c, &body, bodyRequired) {
		return
	}
	if len(s.cfg.Commands) == 0 {
		fail(c, http.StatusNotFound, "not_found", "no ad-hoc commands are configured on this server (adhoc.commands in its configuration)")
		return
	}
	argv, err := s.cfg.Commands.Resolve(body.Name, body.Service)
	if errors.Is(err, executor.ErrUnknownCommand) {
		fail(c, http.StatusNotFound, "not_found", fmt.Sprintf("no command %q on the allow-list; GET /api/v1/adhoc lists them", body.Name))
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	req := executor.CommandRequest{Name: body.Name, Argv: argv, Nodes: nodeList(body.Nodes), MaxOutput: s.cfg.CommandMaxOutput, Timeout: s.cfg.CommandTimeout}
	if err := req.Validate(); err != nil {
		s.failErr(c, err)
		return
	}
	if !nodesFit(c, req.Nodes) {
		return
	}
	runner, ok := physicalAs[executor.CommandRunner](s, c, "run commands")
	if !ok {
		return
	}
	ctx, done, ok := s.inspection(c)
	if !ok {
		return
	}
	defer done()
	// The audit trail: who ran what where, and how it ended on each node.
	log := s.cfg.Logger.WithFields(logrus.Fields{"token": c.GetString("token_name"), "command": req.Name, "argv": argv, "nodes": body.Nodes})
	log.Info("ad-hoc command: running")
	results, err := runner.RunCommand(ctx, req)
	if err != nil {
		log.WithError(err).Warn("ad-hoc command: the run failed")
		s.runFailed(c, "running the command on the nodes", err)
		return
	}
	rcs := map[string]int{}
	for _, r := range results {
		rcs[r.Host] = r.RC
	}
	log.WithField("rc", rcs).Info("ad-hoc command: done")
	c.JSON(http.StatusOK, api.AdhocRun{Name: req.Name, Argv: argv, Nodes: listOf(results, renderCommandResult)})
}

// physicalAs is this server's executor for physical nodes as the operation's interface T; false after
// answering 400 naming what it cannot do.
func physicalAs[T any](s *Server, c *gin.Context, what string) (T, bool) {
	var none T
	exec, err := s.executorFor(executor.PlatformPhysical)
	if err != nil {
		failField(c, "platform", "physical nodes are not configured on this server")
		return none, false
	}
	t, ok := exec.(T)
	if !ok {
		failField(c, "platform", "this server's executor for physical nodes cannot "+what)
	}
	return t, ok
}

// inspectionTimeout bounds a node run a request waits for, beyond the command's own timeout.
const inspectionTimeout = 5 * time.Minute

// inspection waits for a slot for a node run the request waits for, and gives the run's context: the
// request's, ended also by the server's shutdown and after inspectionTimeout. false: the client left
// while it waited (nothing to answer).
func (s *Server) inspection(c *gin.Context) (context.Context, func(), bool) {
	select {
	case s.inspections <- struct{}{}:
	case <-c.Request.Context().Done():
		c.Abort()
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), inspectionTimeout+s.cfg.CommandTimeout)
	stop := context.AfterFunc(s.engine.Context(), cancel)
	return ctx, func() {
		stop()
		cancel()
		<-s.inspections
	}, true
}

// runFailed answers a node run that could not be made at all (bad input is 400; else 502, saying why).
func (s *Server) runFailed(c *gin.Context, what string, err error) {
	if executor.IsValidation(err) {
		s.failErr(c, err)
		return
	}
	s.cfg.Logger.WithError(err).Warn(what + " failed")
	fail(c, http.StatusBadGateway, "run_failed", what+" failed: "+err.Error())
}

// nodeList turns host names into nodes.
func nodeList(hosts []string) []executor.Node {
	out := make([]executor.Node, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, executor.Node{Host: h})
	}
	return out
}

// healthOf is a request's health check (none: the unit must be active, nothing more).
func healthOf(h *api.HealthCheck) executor.HealthCheck {
	if h == nil {
		return executor.HealthCheck{}
	}
	return executor.HealthCheck{HTTPPort: h.HTTPPort, HTTPPath: h.HTTPPath, HTTPStatus: h.HTTPStatus,
		TCPPort: h.TCPPort, Retries: h.Retries, Delay: times(h.DelaySeconds, time.Second),
		Interval: times(h.IntervalMS, time.Millisecond), Stable: times(h.StableSeconds, time.Second)}
}

// times is n units as a Duration, held at the largest (or smallest) Duration where the product would
// overflow: a huge number of seconds must stay huge for validation to refuse it, not wrap round into
// a small one.
func times(n int, unit time.Duration) time.Duration {
	limit := int(math.MaxInt64 / unit)
	switch {
	case n > limit:
		return math.MaxInt64
	case n < -limit:
		return math.MinInt64
	}
	return time.Duration(n) * unit
}
