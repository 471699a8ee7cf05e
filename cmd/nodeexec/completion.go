package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/nodeexec/nodeexec/executor"
)

// Shell completion, generated from the table of commands and the flags each command really parses
// (collected through parseFlags), so it cannot drift from them.

var completionShells = []string{"bash", "zsh", "fish"}

// completionCmd prints a completion script for a shell.
func completionCmd(ctx context.Context, args []string) (bool, error) {
	fs := flag.NewFlagSet("nodeexec completion", flag.ContinueOnError)
	pos, err := parseArgs(fs, args, 1, "a shell: nodeexec completion bash|zsh|fish")
	if err != nil {
		return false, err
	}
	words, err := completionWords(ctx)
	if err != nil {
		return false, err
	}
	switch pos[0] {
	case "bash":
		writeBash(os.Stdout, words)
	case "zsh": // zsh runs bash's completion functions through bashcompinit
		fmt.Fprint(os.Stdout, "#compdef nodeexec\nautoload -U +X bashcompinit && bashcompinit\n")
		writeBash(os.Stdout, words)
	case "fish":
		writeFish(os.Stdout, words)
	default:
		return false, &executor.ValidationError{Field: "shell", Reason: fmt.Sprintf("%q: want bash, zsh or fish", pos[0])}
	}
	return true, nil
}

// commandWords are what may follow `nodeexec NAME [SUB]`: its flags.
type commandWords struct {
	name, sub string
	flags     []*flag.Flag
}

// completionWords asks every command (and subcommand) for its flags, running none of them.
func completionWords(ctx context.Context) ([]commandWords, error) {
	var out []commandWords
	var got *flag.FlagSet
	collectFlags = func(fs *flag.FlagSet) { got = fs }
	defer func() { collectFlags = nil }()
	for _, c := range commands {
		if c.name == "help" { // completes command names, has no flags
			out = append(out, commandWords{name: c.name})
			continue
		}
		subs := c.subcommands
		if len(subs) == 0 {
			subs = []string{""}
		}
		for _, sub := range subs {
			got = nil
			args := []string{"-h"}
			if sub != "" {
				args = []string{sub, "-h"}
			}
			if _, err := c.run(ctx, args); err != errHelp || got == nil {
				return nil, fmt.Errorf("completion: %s %s gave no flags (%v)", c.name, sub, err)
			}
			cw := commandWords{name: c.name, sub: sub}
			got.VisitAll(func(f *flag.Flag) { cw.flags = append(cw.flags, f) })
			sort.Slice(cw.flags, func(i, j int) bool { return cw.flags[i].Name < cw.flags[j].Name })
			out = append(out, cw)
		}
	}
	return out, nil
}

// dashed is a flag as typed: -o, --output.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func commandNames() string {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	return strings.Join(names, " ")
}

func writeBash(w io.Writer, words []commandWords) {
	var sb strings.Builder
	sb.WriteString(`# nodeexec completion for bash: source <(nodeexec completion bash)
_nodeexec() {
    local cur="${COMP_WORDS[COMP_CWORD]}" cmd="${COMP_WORDS[1]}" sub="${COMP_WORDS[2]}" opts=""
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "` + commandNames() + `" -- "$cur"))
        return
    fi
    case "$cmd" in
`)
	fmt.Fprintf(&sb, "    help) [ \"$COMP_CWORD\" -eq 2 ] && COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", commandNames())
	fmt.Fprintf(&sb, "    completion) [ \"$COMP_CWORD\" -eq 2 ] && COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", strings.Join(completionShells, " "))
	for _, c := range commands {
		if c.name == "help" || c.name == "completion" {
			continue
		}
		fmt.Fprintf(&sb, "    %s)\n", c.name)
		if len(c.subcommands) > 0 {
			fmt.Fprintf(&sb, "        if [ \"$COMP_CWORD\" -eq 2 ]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return; fi\n", strings.Join(c.subcommands, " "))
			sb.WriteString("        case \"$sub\" in\n")
		}
		for _, cw := range words {
			if cw.name != c.name {
				continue
			}
			var flags []string
			for _, f := range cw.flags {
				flags = append(flags, dashed(f.Name))
			}
			if cw.sub != "" {
				fmt.Fprintf(&sb, "        %s) opts=%q ;;\n", cw.sub, strings.Join(flags, " "))
			} else {
				fmt.Fprintf(&sb, "        opts=%q\n", strings.Join(flags, " "))
			}
		}
		if len(c.subcommands) > 0 {
			sb.WriteString("        esac\n")
		}
		sb.WriteString("        ;;\n")
	}
	sb.WriteString(`    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _nodeexec nodeexec
`)
	_, _ = io.WriteString(w, sb.String())
}

func writeFish(w io.Writer, words []commandWords) {
	var sb strings.Builder
	sb.WriteString(`# nodeexec completion for fish: nodeexec completion fish | source
function __nodeexec_at --description 'the command line is at nodeexec CMD [SUB]'
    set -l words (commandline -opc)
    test (count $words) -ge 2; and test "$words[2]" = "$argv[1]"; or return 1
    test (count $argv) -lt 2; and return 0
    test (count $words) -ge 3; and test "$words[3]" = "$argv[2]"
end
function __nodeexec_words --description 'how many words the command line has'
    test (count (commandline -opc)) -eq $argv[1]
end
`)
	fmt.Fprintf(&sb, "complete -c nodeexec -n '__nodeexec_words 1' -f -a %s\n", fishQuote(commandNames()))
	fmt.Fprintf(&sb, "complete -c nodeexec -n '__nodeexec_at help; and __nodeexec_words 2' -f -a %s\n", fishQuote(commandNames()))
	fmt.Fprintf(&sb, "complete -c nodeexec -n '__nodeexec_at completion; and __nodeexec_words 2' -f -a %s\n", fishQuote(strings.Join(completionShells, " ")))
	for _, c := range commands {
		if len(c.subcommands) > 0 {
			fmt.Fprintf(&sb, "complete -c nodeexec -n '__nodeexec_at %s; and __nodeexec_words 2' -f -a %s\n", c.name, fishQuote(strings.Join(c.subcommands, " ")))
		}
	}
	for _, cw := range words {
		at := strings.TrimSpace(cw.name + " " + cw.sub)
		for _, f := range cw.flags {
			opt := "-l " + f.Name
			if len(f.Name) == 1 {
				opt = "-s " + f.Name
			}
			desc, _, _ := strings.Cut(f.Usage, "\n")
			fmt.Fprintf(&sb, "complete -c nodeexec -n '__nodeexec_at %s' %s -d %s\n", at, opt, fishQuote(clip(desc, 70)))
		}
	}
	_, _ = io.WriteString(w, sb.String())
}

// fishQuote is s in single quotes, as fish reads them.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
