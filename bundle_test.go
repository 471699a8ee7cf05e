package nodeexec

import (
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/executor/ansible"
)

// The binary runs the bundled copy of the playbooks, not the checkout: it must be complete and valid.
func TestBundleExtractsEveryPlaybookAndRole(t *testing.T) {
	dir, err := ansible.ExtractBundle(Bundle, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	err = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !strings.Contains(p, "__pycache__") && (p == "ansible.cfg" || strings.HasPrefix(p, "playbooks/") || strings.HasPrefix(p, "roles/") || strings.HasPrefix(p, "plugins/")) {
			want = append(want, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range want {
		src, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || string(got) != string(src) {
			t.Errorf("%s: not extracted as in the repository (%v)", p, err)
		}
	}
	if len(want) < 5 {
		t.Fatalf("only %d files in the bundle", len(want))
	}
	// Extracting again reuses the same directory.
	again, err := ansible.ExtractBundle(Bundle, filepath.Dir(dir))
	if err != nil || again != dir {
		t.Errorf("second extract = %q, %v; want %q", again, err, dir)
	}
}

func TestBundledPlaybooksPassSyntaxCheck(t *testing.T) {
	if _, err := osexec.LookPath("ansible-playbook"); err != nil {
		t.Skip("ansible-playbook is not installed")
	}
	dir, err := ansible.ExtractBundle(Bundle, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	books, _ := filepath.Glob(filepath.Join(dir, "playbooks", "*.yml"))
	if len(books) < 5 {
		t.Fatalf("want deploy, rollback, cleanup, status and unlock playbooks, found %v", books)
	}
	for _, book := range books {
		cmd := osexec.Command("ansible-playbook", "--syntax-check", "-i", "localhost,", book)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(dir, "ansible.cfg"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", filepath.Base(book), err, out)
		}
	}
}
