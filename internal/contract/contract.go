// Package contract checks JSON documents against the shapes the Plan Layer's specification gives the
// management endpoints, and the pods listing's own (docs/contract/*.schema.json, JSON Schema draft
// 2020-12). Tests use it on real
// answers; the server does not: the schemas are what a caller may rely on, not how nodeexec builds them.
package contract

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema names one of the specified shapes, by its file in docs/contract.
type Schema string

const (
	Info   Schema = "info.schema.json"
	Health Schema = "health.schema.json"
	Logs   Schema = "logs.schema.json"
	// Pods is GET /api/v1/pods.
	Pods Schema = "pods.schema.json"
)

var (
	compileOnce sync.Once
	compiled    map[Schema]*jsonschema.Schema
	compileErr  error
)

// Validate says how doc departs from the schema; nil when it conforms. Formats (date-time) are
// asserted, not only annotated.
func Validate(s Schema, doc []byte) error {
	compileOnce.Do(func() { compiled, compileErr = compileAll() })
	if compileErr != nil {
		return compileErr
	}
	sch, ok := compiled[s]
	if !ok {
		return fmt.Errorf("no schema %s in docs/contract", s)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return sch.Validate(v)
}

// compileAll compiles every schema of docs/contract, found from the working directory up (tests run in
// their package's directory, anywhere in the module).
func compileAll() (map[Schema]*jsonschema.Schema, error) {
	dir, err := contractDir()
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	out := map[Schema]*jsonschema.Schema{}
	for _, s := range []Schema{Info, Health, Logs, Pods} {
		sch, err := c.Compile(filepath.Join(dir, string(s)))
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", s, err)
		}
		out[s] = sch
	}
	return out, nil
}

func contractDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "docs", "contract"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("docs/contract: no go.mod above the working directory")
		}
		dir = parent
	}
}
