package executor

import "testing"

func TestCutKeepsWholeCharactersAndSaysWhetherItCut(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
		cut  bool
	}{
		{"short", 10, "short", false},
		{"exact", 5, "exact", false},
		{"longer", 3, "lon", true},
		{"ab€cd", 3, "ab", true}, // € is 3 bytes: cutting inside it keeps none of it
		{"ab€cd", 5, "ab€", true},
		{"€", 2, "", true},
		{"abc", 0, "", true},
	} {
		got, cut := Cut(c.s, c.n)
		if got != c.want || cut != c.cut {
			t.Errorf("Cut(%q, %d) = %q, %v; want %q, %v", c.s, c.n, got, cut, c.want, c.cut)
		}
	}
}

func TestCleanErrorDropsTrailingLineEndsAndCarriageReturns(t *testing.T) {
	for in, want := range map[string]string{
		"Connection refused\r\n":       "Connection refused",
		"refused\r\n\r\n \t\x00":       "refused",
		"first\r\nsecond\r\n":          "first\nsecond",
		"progress\rdone":               "progress done",
		"clean":                        "clean",
		"":                             "",
		"  leading space is kept\n":    "  leading space is kept",
		"ends in a bell\a and a tab\t": "ends in a bell\a and a tab",
	} {
		if got := CleanError(in); got != want {
			t.Errorf("CleanError(%q) = %q, want %q", in, got, want)
		}
	}
}
