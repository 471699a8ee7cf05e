package k8s

import (
	"context"
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Client-side rate limits: client-go's defaults (5 requests/s, bursts of 10) would hold back a rollout
// of many workloads at once, which takes a few requests per workload. The API server's own priority
// and fairness still protects it.
const (
	clientQPS   = 50
	clientBurst = 100
)

// NewClient connects to a cluster: with a kubeconfig file when given, else from inside a pod (the
// service account), else from the default kubeconfig ($KUBECONFIG, ~/.kube/config).
func NewClient(kubeconfig string) (kubernetes.Interface, *rest.Config, error) {
	var cfg *rest.Config
	var err error
	switch {
	case kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	default:
		if cfg, err = rest.InClusterConfig(); err != nil {
			cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
				clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = clientQPS, clientBurst
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, cfg, nil
}

// Connect builds an executor for the cluster of a kubeconfig (see NewClient), with the clients of
// every operation; cfg supplies the rest (timeouts, logger).
func Connect(kubeconfig string, cfg Config) (*Executor, error) {
	c, rc, err := NewClient(kubeconfig)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes dynamic client: %w", err)
	}
	cfg.Client, cfg.Dynamic = c, dyn
	return New(cfg)
}

// Ping checks the cluster answers, within ctx: asking its version needs no permission beyond being
// authenticated.
func (e *Executor) Ping(ctx context.Context) error {
	rc := e.c.Discovery().RESTClient()
	if rc == nil {
		return nil // a fake clientset in a test
	}
	if _, err := rc.Get().AbsPath("/version").Do(ctx).Raw(); err != nil {
		return fmt.Errorf("the Kubernetes API server does not answer: %w", err)
	}
	return nil
}
