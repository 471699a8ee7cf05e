package executor

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Cut shortens s to at most n bytes, back to the start of a whole character (never half of one), and
// says whether it cut anything. What nodes print is bounded with it before it is kept or shown.
func Cut(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], true
}

// CleanError is an error text as it is recorded and shown: no trailing whitespace or control
// characters (ssh ends its messages with "\r\n", which split the command line's table and retry
// lines), and no carriage returns within it.
func CleanError(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.TrimRightFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}
