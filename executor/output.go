package executor

import "unicode/utf8"

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
