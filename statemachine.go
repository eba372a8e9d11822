package novacron

// Action is a lifecycle action on a VM.
type Action string

// The lifecycle actions.
const (
	ActionCreate  Action = "create"
	ActionStart   Action = "start"
	ActionStop    Action = "stop"
	ActionRestart Action = "restart"
	ActionPause   Action = "pause"
	ActionResume  Action = "resume"
	ActionDelete  Action = "delete"
	ActionResize  Action = "resize"
)

// Transition is one row of the VM state machine: the states an action may
// start from, the transitional state the VM shows while the action runs, the
// state it ends in, and the desired state it records.
type Transition struct {
	From    []VMState
	During  VMState
	To      VMState
	Desired VMState
}

// Transitions is the VM state machine, the only place that says which action
// is legal in which state. An action from any other state is invalid_state.
var Transitions = map[Action]Transition{
	ActionStart:   {From: []VMState{StateStopped, StateFailed}, During: StateStarting, To: StateRunning, Desired: StateRunning},
	ActionStop:    {From: []VMState{StateRunning, StatePaused}, During: StateStopping, To: StateStopped, Desired: StateStopped},
	ActionRestart: {From: []VMState{StateRunning}, During: StateRestarting, To: StateRunning, Desired: StateRunning},
	ActionPause:   {From: []VMState{StateRunning}, During: StateRunning, To: StatePaused, Desired: StateRunning},
	ActionResume:  {From: []VMState{StatePaused}, During: StatePaused, To: StateRunning, Desired: StateRunning},
	ActionDelete:  {From: []VMState{StateStopped, StateFailed, StateRunning, StatePaused}, During: StateDeleting, To: StateDeleting, Desired: StateStopped},
	// Resizing changes the spec of a VM that is not running; it has no
	// transitional state.
	ActionResize: {From: []VMState{StateStopped, StateFailed}},
}

// Allows reports whether action a is legal in state s.
func (t Transition) Allows(s VMState) bool {
	for _, f := range t.From {
		if f == s {
			return true
		}
	}
	return false
}

// Transitional reports whether s is a state a VM only passes through while
// an operation runs.
func (s VMState) Transitional() bool {
	switch s {
	case StateCreating, StateStarting, StateStopping, StateRestarting, StateMigrating, StateDeleting:
		return true
	}
	return false
}
