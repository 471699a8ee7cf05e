package executor

import "fmt"

// State is where a node stands in a deployment.
type State string

const (
	StatePending    State = "pending"
	StateDeploying  State = "deploying"
	StateSuccess    State = "success"
	StateFailed     State = "failed"
	StateRolledBack State = "rolled_back"
)

// States lists every state, in lifecycle order.
var States = []State{StatePending, StateDeploying, StateSuccess, StateFailed, StateRolledBack}

// transitions is the one written-down state machine. A node that has never been seen has state "".
//
//	""          -> pending, deploying
//	pending     -> deploying, failed (cancelled or refused before it started)
//	deploying   -> success, failed, rolled_back
//	failed      -> rolled_back (automatic or explicit), pending, deploying
//	success     -> pending, deploying (the next deploy or a rollback)
//	rolled_back -> pending, deploying
var transitions = map[State][]State{
	"":              {StatePending, StateDeploying},
	StatePending:    {StateDeploying, StateFailed},
	StateDeploying:  {StateSuccess, StateFailed, StateRolledBack},
	StateFailed:     {StateRolledBack, StatePending, StateDeploying},
	StateSuccess:    {StatePending, StateDeploying},
	StateRolledBack: {StatePending, StateDeploying},
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	for _, known := range States {
		if s == known {
			return true
		}
	}
	return false
}

// Terminal reports whether an operation on the node has ended.
func (s State) Terminal() bool {
	return s == StateSuccess || s == StateFailed || s == StateRolledBack
}

// CheckTransition returns an error unless a node may go from one state to the other.
func CheckTransition(from, to State) error {
	if from != "" && !from.Valid() {
		return fmt.Errorf("unknown state %q", from)
	}
	if !to.Valid() {
		return fmt.Errorf("unknown state %q", to)
	}
	for _, next := range transitions[from] {
		if next == to {
			return nil
		}
	}
	if from == "" {
		from = "(new)"
	}
	return fmt.Errorf("a node cannot go from %s to %s", from, to)
}
