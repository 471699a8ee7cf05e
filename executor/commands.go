package executor

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// AllowList is the operator's ad-hoc commands: a name and the argv it runs on a node. A request names an
// entry and never carries a command: the only text it adds is a validated name, in place of an argv
// element that is exactly a placeholder. The argv runs as a program and its arguments (Ansible's command
// module with argv), never through a shell, so no quoting or metacharacter reaches one.
type AllowList map[string][]string

// PlaceholderService, as a whole argv element, is replaced by the request's service name (checked by
// ValidateService). It is the only placeholder; any other brace in an argv is refused, so a typo such as
// "{servce}" or "{service}.service" is an error in the configuration, not a literal on the node.
const PlaceholderService = "{service}"

// ErrUnknownCommand means the name is not on the allow-list.
var ErrUnknownCommand = errors.New("no such command on the allow-list")

var commandNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Bounds of an allow-list entry.
const (
	maxArgv        = 256
	maxArgvElement = 4096
)

// ValidateCommandName checks an allow-list name.
func ValidateCommandName(name string) error {
	if name == "" {
		return invalid("name", "is required")
	}
	if !commandNameRe.MatchString(name) {
		return invalid("name", "%q is not a command name (1-63 characters: lowercase letters, digits, '_', '-')", name)
	}
	return nil
}

// Check lists what is wrong with the allow-list, entry by entry, sorted by name.
func (a AllowList) Check() []error {
	names := make([]string, 0, len(a))
	for name := range a {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []error
	for _, name := range names {
		if err := ValidateCommandName(name); err != nil {
			out = append(out, err)
			continue
		}
		if err := validateArgv(name, a[name], true); err != nil {
			out = append(out, err)
		}
	}
	return out
}

// Names lists the allow-list's names, sorted.
func (a AllowList) Names() []string {
	out := make([]string, 0, len(a))
	for name := range a {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Uses reports whether the named command takes the service placeholder.
func (a AllowList) Uses(name, placeholder string) bool {
	for _, el := range a[name] {
		if el == placeholder {
			return true
		}
	}
	return false
}

// Resolve is the argv of the named command, with each {service} element replaced by service, which must
// then be a valid service name. A service given to a command without the placeholder is checked too, and
// unused. An unknown name is ErrUnknownCommand.
func (a AllowList) Resolve(name, service string) ([]string, error) {
	if err := ValidateCommandName(name); err != nil {
		return nil, err
	}
	argv, ok := a[name]
	if !ok {
		return nil, fmt.Errorf("%q: %w", name, ErrUnknownCommand)
	}
	uses := a.Uses(name, PlaceholderService)
	if service != "" || uses {
		if err := ValidateService(service); err != nil {
			if service == "" {
				return nil, invalid("service", "command %q runs with the service's name: give the service", name)
			}
			return nil, err
		}
	}
	out := make([]string, len(argv))
	for i, el := range argv {
		if el == PlaceholderService {
			el = service
		}
		out[i] = el
	}
	if err := validateArgv("argv", out, false); err != nil {
		return nil, err
	}
	return out, nil
}

// validateArgv checks a command line: a program and its arguments, each plain text. With placeholders,
// an element may be exactly PlaceholderService (not the program); otherwise no element holds a brace.
func validateArgv(field string, argv []string, placeholders bool) error {
	switch {
	case len(argv) == 0:
		return invalid(field, "is empty: want the program and its arguments, e.g. [\"df\", \"-h\"]")
	case len(argv) > maxArgv:
		return invalid(field, "has %d elements; at most %d", len(argv), maxArgv)
	case argv[0] == "" || strings.HasPrefix(argv[0], "-"):
		return invalid(field, "the program %q must be a name or a path, not empty or an option", argv[0])
	}
	for i, el := range argv {
		if len(el) > maxArgvElement {
			return invalid(field, "element %d is longer than %d bytes", i, maxArgvElement)
		}
		if err := plainText(field, el); err != nil {
			return err
		}
		if !strings.ContainsAny(el, "{}") {
			continue
		}
		if !placeholders || el != PlaceholderService || i == 0 {
			return invalid(field, "element %d %q: the only placeholder is %s, as a whole argument (not the program); no other braces", i, el, PlaceholderService)
		}
	}
	return nil
}
