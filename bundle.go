// Package nodeexec carries the Ansible playbooks and roles inside the binary, so that the executor always
// runs the playbooks it was built and tested with. Operators run the same files from a checkout.
package nodeexec

import "embed"

// Bundle holds ansible.cfg, playbooks/, roles/ and plugins/ as they are in the repository.
//
//go:embed ansible.cfg playbooks roles plugins
var Bundle embed.FS
