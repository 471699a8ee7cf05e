package config

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"time"
)

// Replica is this nodeexec among the replicas that share one database (docs/shared-database.md).
type Replica struct {
	// Name tells this replica from the others, and stays across its restarts, so a restarted replica
	// finishes at once the deployments it left in flight. Empty: "<hostname>/<listen>".
	Name string `yaml:"name"`
	// Lease is how long a replica may go without a heartbeat before another takes over its deployments
	// in flight (and reads their nodes, as a restart does). It heartbeats every sixth of it.
	Lease Duration `yaml:"lease"`
}

// DefaultReplicaLease is the replica lease unless one is set.
const DefaultReplicaLease = 30 * time.Second

var replicaName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$`)

// ReplicaName is the replica's name: the one set, or "<hostname>/<listen>".
func (c Config) ReplicaName() string {
	if c.Replica.Name != "" {
		return c.Replica.Name
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	if _, port, _ := net.SplitHostPort(c.Listen); port == "0" {
		// Any free port: not a name another replica on this host cannot have too.
		return fmt.Sprintf("%s/%s/%d", host, c.Listen, os.Getpid())
	}
	return host + "/" + c.Listen
}

func (r Replica) check() []Problem {
	var out []Problem
	if r.Name != "" && !replicaName.MatchString(r.Name) {
		out = append(out, Problem{"replica.name", fmt.Sprintf("%q: want letters, digits and . _ : / - (at most 128, a letter or digit first)", r.Name)})
	}
	if r.Lease < Duration(3*time.Second) || r.Lease > Duration(time.Hour) {
		out = append(out, Problem{"replica.lease", fmt.Sprintf("want 3s to 1h, not %s", time.Duration(r.Lease))})
	}
	return out
}
