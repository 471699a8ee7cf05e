package k8s

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sirupsen/logrus"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodeexec/nodeexec/retry"
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
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, cfg, nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
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
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = clientQPS, clientBurst
	}
	return cfg, nil
}

// WithRetries makes every request of clients built from cfg try again, with backoff, when the API
// server does not answer or answers 429 or 5xx.
func WithRetries(cfg *rest.Config, p retry.Policy, log logrus.FieldLogger) {
	if p.MaxRetries <= 0 {
		return
	}
	if log == nil {
		log = logrus.StandardLogger()
	}
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return &retryingTransport{next: next, policy: p, log: log}
	})
}

// Connect builds an executor for the cluster of a kubeconfig (see NewClient), with the clients of
// every operation and cfg.Retry on every request; cfg supplies the rest (timeouts, logger).
func Connect(kubeconfig string, cfg Config) (*Executor, error) {
	rc, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	WithRetries(rc, cfg.Retry, cfg.Logger)
	if cfg.Client, err = kubernetes.NewForConfig(rc); err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if cfg.Dynamic, err = dynamic.NewForConfig(rc); err != nil {
		return nil, fmt.Errorf("kubernetes dynamic client: %w", err)
	}
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
