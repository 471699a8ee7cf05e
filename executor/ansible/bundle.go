package ansible

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// ExtractBundle writes the playbooks, roles and ansible.cfg carried inside the binary to a directory
// under root named by their content hash, once, and returns it. A half-written copy is never used:
// it is written beside the target and renamed into place.
func ExtractBundle(bundle fs.FS, root string) (string, error) {
	sum, files, err := hashBundle(bundle)
	if err != nil {
		return "", fmt.Errorf("read the bundled playbooks: %w", err)
	}
	dir := filepath.Join(root, "bundle-"+sum[:16])
	if _, err := os.Stat(filepath.Join(dir, "ansible.cfg")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(root, ".bundle-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for _, name := range files {
		data, err := fs.ReadFile(bundle, name)
		if err != nil {
			return "", err
		}
		target := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "ansible.cfg")); statErr == nil {
			return dir, nil // another process extracted the same bundle first
		}
		return "", err
	}
	return dir, nil
}

func hashBundle(bundle fs.FS) (string, []string, error) {
	var files []string
	err := fs.WalkDir(bundle, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, name := range files {
		f, err := bundle.Open(name)
		if err != nil {
			return "", nil, err
		}
		fmt.Fprintf(h, "%s\x00", path.Clean(name))
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", nil, err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), files, nil
}
