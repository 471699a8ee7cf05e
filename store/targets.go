package store

import "github.com/nodeexec/nodeexec/executor"

// Targets are what a deployment runs on: physical nodes, or Kubernetes workloads. Each is one of the
// deployment's nodes, named by Hosts.
type Targets struct {
	Nodes     []executor.Node
	Workloads []executor.Workload
}

// Hosts names the targets as a deployment's nodes are named: physical hosts, then workloads as
// "namespace/name".
func (t Targets) Hosts() []string {
	var out []string
	for _, n := range t.Nodes {
		out = append(out, n.Host)
	}
	for _, w := range t.Workloads {
		out = append(out, w.Host())
	}
	return out
}

// Only is t with just the targets hosts names, in t's order.
func (t Targets) Only(hosts []string) Targets {
	want := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		want[h] = true
	}
	var out Targets
	for _, n := range t.Nodes {
		if want[n.Host] {
			out.Nodes = append(out.Nodes, n)
		}
	}
	for _, w := range t.Workloads {
		if want[w.Host()] {
			out.Workloads = append(out.Workloads, w)
		}
	}
	return out
}

// Address is how the physical node host is reached: its Address when the request gave one, else its
// host name.
func (t Targets) Address(host string) string {
	for _, n := range t.Nodes {
		if n.Host == host && n.Address != "" {
			return n.Address
		}
	}
	return host
}

// Targets are what d runs on, as its operation's request names them.
func (d *Deployment) Targets() Targets {
	t, _ := d.request()
	return t
}

// Health is how d's nodes prove they work (zero: no check; a scale has none).
func (d *Deployment) Health() executor.HealthCheck {
	_, hc := d.request()
	return hc
}

// request reads what callers ask of every kind from the request of d's kind: the one place outside
// the engine's operations that tells kinds apart. A kind this build does not know is a deploy, as the
// engine runs it.
func (d *Deployment) request() (Targets, executor.HealthCheck) {
	switch d.Kind {
	case KindRollback:
		if r := d.Rollback; r != nil {
			return Targets{Nodes: r.Nodes, Workloads: r.Workloads}, r.Health
		}
	case KindScale:
		if r := d.Scale; r != nil {
			return Targets{Workloads: r.Workloads}, executor.HealthCheck{}
		}
	case KindRestart:
		if r := d.Restart; r != nil {
			return Targets{Nodes: r.Nodes}, r.Health
		}
	default:
		if r := d.Deploy; r != nil {
			return Targets{Nodes: r.Nodes, Workloads: r.Workloads}, r.Health
		}
	}
	return Targets{}, executor.HealthCheck{}
}
