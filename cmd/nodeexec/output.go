package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/executor"
)

// How commands print: -o table (the default), wide (more columns where a command has them) or json
// (the API's objects, one a line: NDJSON while a command follows something). Errors follow: under
// -o json they are the API's error body on standard error, with the same exit status.

type outputFormat string

const (
	outputTable outputFormat = "table"
	outputWide  outputFormat = "wide"
	outputJSON  outputFormat = "json"
)

// outputFlags are -o/--output and --json, its older spelling.
func outputFlags(fs *flag.FlagSet, f *outputFormat) {
	*f = outputTable
	set := func(v string) error {
		switch o := outputFormat(v); o {
		case outputTable, outputWide, outputJSON:
			*f = o
			return nil
		}
		return fmt.Errorf("want table, wide or json, not %q", v)
	}
	fs.Func("o", "output: table, wide (more columns) or json (the API's objects, one a line; NDJSON while following)", set)
	fs.Func("output", "same as -o", set)
	fs.BoolFunc("json", "same as -o json", func(v string) error {
		on, err := strconv.ParseBool(v)
		if on {
			*f = outputJSON
		}
		return err
	})
}

// wantsJSON reports whether args ask for -o json, read before the command parses them: an error in
// parsing is to be JSON too.
func wantsJSON(args []string) bool {
	out := false
	for i, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		switch name {
		case "o", "output":
			if !hasValue && i+1 < len(args) {
				value = args[i+1]
			}
			out = value == string(outputJSON)
		case "json":
			on, err := strconv.ParseBool(value)
			out = !hasValue || (err == nil && on)
		}
	}
	return out
}

// writeJSON writes v on one line.
func writeJSON(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// usageError is input the command cannot parse (exit status 2); fs, when set, is the command's flags,
// whose help goes with the message.
type usageError struct {
	msg string
	fs  *flag.FlagSet
}

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == errUsage }

// reportError writes a command's error on standard error: a sentence, or under -o json the API's error
// body. badInput errors get code "invalid" (or "usage") when the server did not give one.
func reportError(cmd string, err error, asJSON, badInput bool) {
	var ue *usageError
	isUsage := errors.As(err, &ue)
	if !asJSON {
		switch {
		case isUsage:
			fmt.Fprintf(os.Stderr, "%s\n", ue.msg)
			if ue.fs != nil {
				fmt.Fprintln(os.Stderr)
				writeCommandHelp(os.Stderr, ue.fs)
			}
		case badInput:
			fmt.Fprintf(os.Stderr, "nodeexec %s: invalid input: %v\n", cmd, err)
		default:
			fmt.Fprintf(os.Stderr, "nodeexec %s: %v\n", cmd, err)
		}
		return
	}
	_ = writeJSON(os.Stderr, errorBody(err, isUsage, badInput))
}

// errorBody is err as the API's error body: the server's own when it answered one.
func errorBody(err error, isUsage, badInput bool) api.Error {
	body := api.Error{Error: err.Error(), Code: "failed"}
	var ce *client.Error
	var ve *executor.ValidationError
	var conn *client.ConnError
	switch {
	case errors.As(err, &ce):
		body.Code, body.Field, body.DeploymentID = ce.Code, ce.Field, ce.DeploymentID
	case errors.As(err, &ve):
		body.Code, body.Field = "invalid", ve.Field
	case errors.As(err, &conn):
		body.Code = "unreachable"
	case isUsage:
		body.Code = "usage"
	case badInput:
		body.Code = "invalid"
	}
	return body
}
