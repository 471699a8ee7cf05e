// Package k8s is the Executor for Kubernetes workloads: a deploy sets the image of a Deployment's or a
// StatefulSet's container and waits, with a watch, until the rollout is really done (every replica
// updated, ready and available, no old one left); a rollout that fails is rolled back to the image
// that ran before. Each workload is reported as one node whose Host is "namespace/name".
package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/retry"
)

// Annotations nodeexec writes on the workloads it deploys.
const (
	annDeployment    = "nodeexec.io/deployment-id"
	annVersion       = "nodeexec.io/version"
	annPreviousImage = "nodeexec.io/previous-image"
	// annImage is the image nodeexec set with annVersion: a live image that is not it was set by
	// someone else (kubectl set image), and the version is then the live image's.
	annImage = "nodeexec.io/image"
	// annBlueGreenService marks a Deployment deployed blue-green, naming the Service that is switched.
	annBlueGreenService = "nodeexec.io/blue-green-service"
)

// fieldManager is who nodeexec is in the API server's records of who set which field.
const fieldManager = "nodeexec"

// Config wires the executor to a cluster.
type Config struct {
	Client kubernetes.Interface
	// Dynamic (optional) lets the executor apply manifests of any kind and delete by labels.
	Dynamic dynamic.Interface
	// RolloutTimeout bounds one rollout when the caller's context has no deadline; default 10m.
	RolloutTimeout time.Duration
	// RollbackTimeout bounds the automatic rollback after a failed rollout; default 5m.
	RollbackTimeout time.Duration
	// MaxParallel bounds the workloads worked on at once; default 10.
	MaxParallel int
	// Retry is how Connect's clients try a request again when the API server fails (no answer, 429,
	// 5xx); the zero policy never does.
	Retry  retry.Policy
	Logger logrus.FieldLogger
}

// Executor deploys to Kubernetes workloads.
type Executor struct {
	cfg    Config
	c      kubernetes.Interface
	dyn    dynamic.Interface
	mapper meta.ResettableRESTMapper
	log    logrus.FieldLogger
}

var (
	_ executor.Executor       = (*Executor)(nil)
	_ executor.Scaler         = (*Executor)(nil)
	_ executor.PodInspector   = (*Executor)(nil)
	_ executor.RevisionLister = (*Executor)(nil)
)

// New checks the configuration.
func New(cfg Config) (*Executor, error) {
	if cfg.Client == nil {
		return nil, errors.New("k8s executor: a Kubernetes client is required")
	}
	if cfg.RolloutTimeout <= 0 {
		cfg.RolloutTimeout = 10 * time.Minute
	}
	if cfg.RollbackTimeout <= 0 {
		cfg.RollbackTimeout = 5 * time.Minute
	}
	if cfg.MaxParallel <= 0 {
		cfg.MaxParallel = 10
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	e := &Executor{cfg: cfg, c: cfg.Client, dyn: cfg.Dynamic, log: cfg.Logger}
	if cfg.Dynamic != nil {
		e.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cfg.Client.Discovery()))
	}
	return e, nil
}

// Deploy sets req.Image on every workload and waits for each rollout; one that fails is rolled back
// to the image it ran before, in the same call. Setting the image a workload already runs changes
// nothing.
func (e *Executor) Deploy(ctx context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if len(req.Workloads) == 0 {
		return nil, &executor.ValidationError{Field: "workloads", Reason: "the Kubernetes executor deploys workloads, not nodes"}
	}
	return e.each(req.Workloads, func(w executor.Workload) executor.NodeResult {
		return e.deployOne(ctx, req, w)
	}), nil
}

// each runs op for every workload, a bounded number at a time, and keeps the request's order.
func (e *Executor) each(ws []executor.Workload, op func(executor.Workload) executor.NodeResult) []executor.NodeResult {
	out := make([]executor.NodeResult, len(ws))
	slots := make(chan struct{}, e.cfg.MaxParallel)
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			out[i] = op(w)
		})
	}
	wg.Wait()
	return out
}

func (e *Executor) deployOne(ctx context.Context, req executor.DeployRequest, w executor.Workload) executor.NodeResult {
	t := e.track(w, req.Service, req.DeploymentID, req.Version, req.Progress)
	k, cur, err := e.read(ctx, w)
	if err != nil {
		return t.fail("Read the workload", err)
	}
	tmpl, ann := cur.template, cur.annotations
	if svc := ann[annBlueGreenService]; svc != "" || req.Strategy.Type == executor.StrategyBlueGreen {
		if len(req.Env) > 0 {
			return t.fail("Choose the strategy", fmt.Errorf("%s is deployed blue-green (Service %s): its new color copies the serving pods as they are, so a deploy cannot set their environment", w.Host(), svc))
		}
		if req.Strategy.Type == executor.StrategyRolling {
			return t.fail("Choose the strategy", fmt.Errorf("%s is deployed blue-green (Service %s): a rolling update would bypass the switch; ask for strategy blue-green, or leave it out", w.Host(), svc))
		}
		return e.deployBlueGreen(ctx, req, w, t)
	}
	ci, err := containerIndex(&tmpl.Spec, w.Container)
	if err != nil {
		return t.fail("Find the container", err)
	}
	res := &t.res
	container := tmpl.Spec.Containers[ci].Name
	prevImage, prevEnv := tmpl.Spec.Containers[ci].Image, tmpl.Spec.Containers[ci].Env
	prevVersion := versionOf(prevImage, ann)
	res.CurrentVersion, res.PrevVersion = prevVersion, ann[annPreviousImage]
	if prevImage == req.Image && envHolds(prevEnv, req.Env) {
		// Already there: nothing changes, but the answer must still be true.
		r, err := awaitRollout(ctx, k, 0)
		if err != nil {
			return t.fail("Check the rollout", err)
		}
		t.step("Check the rollout", false, "already runs "+req.Image+": "+r.Message)
		res.State, res.CurrentVersion, res.PrevVersion, res.RunningVersion = executor.StateSuccess, req.Version, imageVersionOr(ann[annPreviousImage]), req.Version
		return *res
	}
	res.PrevVersion = prevVersion
	if err := setImage(ctx, k, containerChange{name: container, image: req.Image, env: envEntries(req.Env)}, map[string]string{
		annDeployment: req.DeploymentID, annVersion: req.Version, annPreviousImage: prevImage,
	}, rollingSettings(w.Kind, req.Strategy)); err != nil {
		return t.fail("Set the image", err)
	}
	t.step("Set the image", true, fmt.Sprintf("%s: %s -> %s%s", container, prevImage, req.Image, envNote(req.Env)))
	r, reason := awaitRollout(ctx, k, e.cfg.RolloutTimeout)
	if reason == nil {
		t.step("Wait for the rollout", false, r.Message)
		res.State, res.CurrentVersion, res.RunningVersion = executor.StateSuccess, req.Version, req.Version
		t.log.Info("rollout done")
		return *res
	}
	t.emit(executor.Step{Name: "Wait for the rollout", Failed: true, Message: reason.Error()})
	t.log.WithField("reason", reason).Warn("rollout failed; rolling back to the previous image")
	// The rollback runs even when the caller's context ended: a half-rolled-out workload must not stay.
	bctx, bcancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.RollbackTimeout)
	defer bcancel()
	if err := setImage(bctx, k, containerChange{name: container, image: prevImage, env: restoreEnv(prevEnv, req.Env)}, map[string]string{
		annDeployment: req.DeploymentID, annVersion: prevVersion, annPreviousImage: req.Image,
	}, nil); err != nil {
		return t.fail("Roll back to the previous image", fmt.Errorf("after %v: %w", reason, err))
	}
	back, err := awaitRollout(bctx, k, 0) // bctx has the rollback's own deadline
	if err != nil {
		return t.fail("Roll back to the previous image", fmt.Errorf("after %v: the rollback did not complete: %w", reason, err))
	}
	t.step("Roll back to the previous image", true, prevImage+": "+back.Message)
	res.State, res.CurrentVersion, res.PrevVersion, res.RunningVersion = executor.StateRolledBack, prevVersion, req.Version, prevVersion
	res.LastError = fmt.Sprintf("rollout of %s failed: %v; rolled back to %s", req.Image, reason, prevImage)
	return *res
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

// validNamespace checks a namespace name as Kubernetes does.
func validNamespace(ns string) bool {
	_, _, ok := executor.SplitWorkloadHost(ns + "/x")
	return ok
}

func notFoundHint(err error, w executor.Workload) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %s not found", w.Kind, w.Host())
	}
	return err
}

// containerChange is what a patch sets in one container: its image, and env entries (envEntries,
// envRestore; none: its env stays).
type containerChange struct {
	name, image string
	env         []any
}

// setImage patches one container's image and env (a strategic merge by container name, and by variable
// name) and the workload's own annotations, and with them any rolling settings (spec fields beside the
// template): one change, one rollout.
func setImage(ctx context.Context, k workloadKind, c containerChange, ann map[string]string, settings map[string]any) error {
	if _, ok := ann[annVersion]; ok {
		ann[annImage] = c.image
	}
	container := map[string]any{"name": c.name, "image": c.image}
	if len(c.env) > 0 {
		container["env"] = c.env
	}
	spec := map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []map[string]any{container},
	}}}
	for k, v := range settings {
		spec[k] = v
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}, "spec": spec})
	if err != nil {
		return err
	}
	return k.patch(ctx, types.StrategicMergePatchType, patch)
}

// Status reports each workload's image version and whether its rollout is done; for a blue-green
// workload, the serving color's.
func (e *Executor) Status(ctx context.Context, req executor.StatusRequest) ([]executor.NodeResult, error) {
	if err := executor.ValidateWorkloads(req.Workloads); err != nil {
		return nil, err
	}
	return e.each(req.Workloads, func(w executor.Workload) executor.NodeResult {
		res := executor.NodeResult{NodeStatus: executor.NodeStatus{Host: w.Host(), Service: req.Service, Platform: executor.PlatformK8s}}
		if err := e.status(ctx, w, &res); err != nil {
			res.State, res.LastError = executor.StateFailed, err.Error()
		}
		return res
	}), nil
}

func (e *Executor) status(ctx context.Context, w executor.Workload, res *executor.NodeResult) error {
	_, cur, err := e.read(ctx, w)
	if err != nil {
		return err
	}
	tmpl, ann := cur.template, cur.annotations
	if svc := ann[annBlueGreenService]; svc != "" {
		return e.blueGreen(w, svc, nil).status(ctx, res)
	}
	ci, err := containerIndex(&tmpl.Spec, w.Container)
	if err != nil {
		return err
	}
	res.CurrentVersion = versionOf(tmpl.Spec.Containers[ci].Image, ann)
	res.PrevVersion = imageVersionOr(ann[annPreviousImage])
	judge(cur.rollout, res)
	return nil
}

// judge turns where a rollout stands into the workload's state.
func judge(r Rollout, res *executor.NodeResult) {
	switch {
	case r.Done:
		res.State, res.RunningVersion = executor.StateSuccess, res.CurrentVersion
	case r.Failed:
		res.State, res.LastError = executor.StateFailed, r.Message
	default:
		res.State, res.LastError = executor.StateDeploying, r.Message
	}
}

// versionOf is the version a workload runs: nodeexec's own record when it set this image, else the tag
// (the image was set by someone else). Workloads last deployed before annImage are taken at their word.
func versionOf(image string, ann map[string]string) string {
	if v := ann[annVersion]; v != "" && (ann[annImage] == "" || ann[annImage] == image) {
		return v
	}
	return imageVersion(image)
}

// imageVersion is an image's tag (or short digest): "reg:5000/app:v2" -> "v2".
func imageVersion(image string) string {
	if at := strings.LastIndex(image, "@sha256:"); at >= 0 {
		return "sha256-" + image[at+8:min(len(image), at+8+12)]
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:]
	}
	return "latest"
}

func imageVersionOr(image string) string {
	if image == "" {
		return ""
	}
	return imageVersion(image)
}
