package ansible

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nodeexec/nodeexec/executor"
)

// Ansible renders every string it is handed as a Jinja template, extra vars and inventory vars alike:
// a version of "{{ lookup('pipe','id') }}" would run a command on the controller. Every string we hand
// over is tagged !unsafe, which Ansible never templates. Values are validated before they get here; this
// is the second defence.

// unsafeYAML turns a Go value into a YAML node whose every string scalar is tagged !unsafe.
func unsafeYAML(v any) (*yaml.Node, error) {
	switch x := v.(type) {
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!unsafe", Value: x, Style: yaml.SingleQuotedStyle}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(x)}, nil
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(x)}, nil
	case []string:
		node := &yaml.Node{Kind: yaml.SequenceNode}
		for _, el := range x {
			val, err := unsafeYAML(el)
			if err != nil {
				return nil, err
			}
			node.Content = append(node.Content, val)
		}
		return node, nil
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return unsafeYAML(m)
	case map[string]any:
		node := &yaml.Node{Kind: yaml.MappingNode}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			val, err := unsafeYAML(x[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			// Keys are ours or validated names; they are never templated by Ansible.
			node.Content = append(node.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, val)
		}
		return node, nil
	default:
		return nil, fmt.Errorf("unsupported value type %T", v)
	}
}

// writeUnsafeYAML writes v as a YAML document to dir/name, readable by the owner only.
func writeUnsafeYAML(dir, name string, v map[string]any) (string, error) {
	node, err := unsafeYAML(v)
	if err != nil {
		return "", err
	}
	data, err := yaml.Marshal(node)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// nodeVars are what every playbook run gets: the service, where it lives, and how to act on the node.
func (e *Executor) nodeVars(service string) map[string]any {
	return map[string]any{
		"nodeexec_service":  service,
		"nodeexec_base_dir": e.cfg.BaseDir,
		"nodeexec_become":   e.cfg.Become,
	}
}

// commonVars are nodeVars plus the lock, for the runs that change a node.
func (e *Executor) commonVars(service, deploymentID string) map[string]any {
	vars := e.nodeVars(service)
	vars["nodeexec_lock_holder"] = lockHolder(deploymentID)
	vars["nodeexec_lock_ttl"] = int(e.cfg.LockTTL.Seconds())
	// A retry of the deployment takes over the lock an earlier attempt's cut connection still holds.
	vars["nodeexec_lock_reclaim"] = true
	vars["nodeexec_download_timeout"] = seconds(e.cfg.DownloadTimeout)
	vars["nodeexec_health_timeout"] = seconds(e.cfg.HealthTimeout)
	return vars
}

// seconds is a duration as Ansible's whole seconds, at least 1.
func seconds(d time.Duration) int { return max(1, int(d.Round(time.Second).Seconds())) }

func healthVars(vars map[string]any, h executor.HealthCheck) {
	vars["nodeexec_health_http_port"] = h.HTTPPort
	vars["nodeexec_health_tcp_port"] = h.TCPPort
	if h.HTTPPath != "" {
		vars["nodeexec_health_http_path"] = h.HTTPPath
	}
	if h.HTTPStatus != 0 {
		vars["nodeexec_health_http_status"] = h.HTTPStatus
	}
	if h.Retries != 0 {
		vars["nodeexec_health_retries"] = h.Retries
	}
	if h.Delay != 0 {
		vars["nodeexec_health_delay"] = max(1, int(h.Delay.Round(time.Second).Seconds()))
	}
	// As text: the vars file carries strings and integers, and the role reads these with `| float`.
	if h.Interval != 0 {
		vars["nodeexec_health_interval"] = strconv.FormatFloat(h.Interval.Seconds(), 'f', -1, 64)
	}
	if h.Stable != 0 {
		vars["nodeexec_health_stable_seconds"] = strconv.FormatFloat(h.Stable.Seconds(), 'f', -1, 64)
	}
}
