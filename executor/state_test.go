package executor

import "testing"

func TestCheckTransition(t *testing.T) {
	allowed := map[[2]State]bool{
		{"", StatePending}: true, {"", StateDeploying}: true,
		{StatePending, StateDeploying}: true, {StatePending, StateFailed}: true,
		{StateDeploying, StateSuccess}: true, {StateDeploying, StateFailed}: true, {StateDeploying, StateRolledBack}: true,
		{StateFailed, StateRolledBack}: true, {StateFailed, StatePending}: true, {StateFailed, StateDeploying}: true,
		{StateSuccess, StatePending}: true, {StateSuccess, StateDeploying}: true,
		{StateRolledBack, StatePending}: true, {StateRolledBack, StateDeploying}: true,
	}
	from := append([]State{""}, States...)
	for _, f := range from {
		for _, to := range States {
			err := CheckTransition(f, to)
			if want := allowed[[2]State{f, to}]; want != (err == nil) {
				t.Errorf("CheckTransition(%q, %q) = %v, want allowed=%v", f, to, err, want)
			}
		}
	}
}

func TestCheckTransitionRefusesUnknownStates(t *testing.T) {
	for _, c := range [][2]State{{"bogus", StateSuccess}, {StateSuccess, "bogus"}, {StateSuccess, ""}} {
		if err := CheckTransition(c[0], c[1]); err == nil {
			t.Errorf("CheckTransition(%q, %q) allowed an unknown state", c[0], c[1])
		}
	}
}

func TestTerminalStates(t *testing.T) {
	for _, s := range States {
		want := s == StateSuccess || s == StateFailed || s == StateRolledBack
		if s.Terminal() != want {
			t.Errorf("%s.Terminal() = %v", s, s.Terminal())
		}
	}
}
