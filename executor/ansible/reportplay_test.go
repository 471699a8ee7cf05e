package ansible

import (
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// The report play of a hand run (nodeexec_report_url, roles/nodeexec_release/tasks/report.yml) costs
// nodeexec's own runs nothing: without the variable, which nodeexec never passes, it matches no host, so
// no task of it runs; an operator who sets it gets it on every host of the run.
func TestTheReportPlayMatchesNoHostUnlessAsked(t *testing.T) {
	if _, err := osexec.LookPath("ansible-playbook"); err != nil {
		t.Skip("ansible-playbook is not installed")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	reportPlay := regexp.MustCompile(`\(([^)]*)\): Report the run to nodeexec\s+TAGS: \[\]\s+pattern: \[[^\]]*\]\s+hosts \((\d+)\)`)
	for _, book := range []string{"deploy.yml", "rollback.yml", "restart.yml"} {
		for _, c := range []struct {
			extra []string
			hosts string
		}{{nil, "0"}, {[]string{"-e", "nodeexec_report_url=http://nodeexec:8080"}, "2"}} {
			cmd := osexec.Command("ansible-playbook", append([]string{"-i", "h1,h2,", "--list-hosts", "playbooks/" + book}, c.extra...)...)
			cmd.Dir = repo
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s --list-hosts: %v\n%s", book, err, out)
			}
			m := reportPlay.FindSubmatch(out)
			if m == nil || string(m[2]) != c.hosts {
				t.Errorf("%s %v: the report play has %q hosts, want %s:\n%s", book, c.extra, m, c.hosts, out)
			}
		}
	}
}
