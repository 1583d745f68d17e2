package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/bot-bottle/bottlecap/budget"
)

// KeyMap is every key the dashboard answers, as data: panes match against
// it and the help pane renders it, so the two cannot disagree.
type KeyMap struct {
	Up       key.Binding
	Down     key.Binding
	PageUp   key.Binding
	PageDown key.Binding
	Top      key.Binding
	Bottom   key.Binding

	Details key.Binding
	Audit   key.Binding
	// Fleet opens the fleet pane; it is disabled, and so absent from
	// help, while the daemon reports no fleet.
	Fleet  key.Binding
	Filter key.Binding
	Sort   key.Binding
	// HideStopped hides or shows frozen and killed bottles; its help
	// says which it will do.
	HideStopped key.Binding
	Back        key.Binding
	Help        key.Binding
	Quit        key.Binding

	Cutoff  key.Binding
	Pause   key.Binding
	Freeze  key.Binding
	Kill    key.Binding
	Restore key.Binding

	// The confirmation dialog: y and n answer at once; Tab, Shift-Tab and
	// the arrows move the focus between its buttons and Enter presses the
	// focused one; esc cancels.
	Confirm    key.Binding
	Cancel     key.Binding
	Press      key.Binding
	NextButton key.Binding
	PrevButton key.Binding
}

// DefaultKeyMap is the dashboard's keys (SPEC section 7). Keys that act on
// containers end their help in '!'.
func DefaultKeyMap() *KeyMap {
	return &KeyMap{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+u"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+d"), key.WithHelp("pgdn", "page down")),
		Top:      key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g", "top")),
		Bottom:   key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G", "bottom")),

		Details:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "details")),
		Audit:       key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "audit")),
		Fleet:       key.NewBinding(key.WithKeys("F"), key.WithHelp("F", "fleet"), key.WithDisabled()),
		Filter:      key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Sort:        key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "sort")),
		HideStopped: key.NewBinding(key.WithKeys("h"), key.WithHelp("h", "hide stopped")),
		Back:        key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Help:        key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:        key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),

		Cutoff:  key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "cut off!")),
		Pause:   key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "pause!")),
		Freeze:  key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "freeze!")),
		Kill:    key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "kill!")),
		Restore: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "restore")),

		Confirm:    key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "yes")),
		Cancel:     key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n/esc", "no")),
		Press:      key.NewBinding(key.WithKeys("enter", "space"), key.WithHelp("enter", "press")),
		NextButton: key.NewBinding(key.WithKeys("tab", "right", "l"), key.WithHelp("tab/→", "next")),
		PrevButton: key.NewBinding(key.WithKeys("shift+tab", "left", "h"), key.WithHelp("shift+tab/←", "previous")),
	}
}

// RemoveActions unbinds the action keys for --readonly: they match nothing
// and vanish from help, rather than being merely disabled.
func (k *KeyMap) RemoveActions() {
	for _, b := range k.actionBindings() {
		b.Unbind()
	}
}

// SetActionsEnabled enables or disables the action keys, as the daemon
// comes and goes. Unbound keys stay unbound.
func (k *KeyMap) SetActionsEnabled(on bool) {
	for _, b := range k.actionBindings() {
		b.SetEnabled(on)
	}
}

func (k *KeyMap) actionBindings() []*key.Binding {
	return []*key.Binding{&k.Cutoff, &k.Pause, &k.Freeze, &k.Kill, &k.Restore}
}

// actionKeys pairs each action binding with its action.
func (k *KeyMap) actionKeys() []actionKey {
	return []actionKey{
		{k.Cutoff, budget.ActCutoff},
		{k.Pause, budget.ActPause},
		{k.Freeze, budget.ActFreeze},
		{k.Kill, budget.ActKill},
		{k.Restore, budget.ActRestore},
	}
}

type actionKey struct {
	binding key.Binding
	action  budget.ActionKind
}

// action finds the action a key press names, whether or not its binding is
// enabled, so a disabled key can say why it does nothing. Unbound keys
// (read-only) name none.
func (k *KeyMap) action(pressed string) (budget.ActionKind, bool, bool) {
	for _, a := range k.actionKeys() {
		for _, s := range a.binding.Keys() {
			if s == pressed {
				return a.action, a.binding.Enabled(), true
			}
		}
	}
	return "", false, false
}

// navigation is the movement keys, for help.
func (k *KeyMap) navigation() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}
}

// actions is the action keys, for help; unbound ones render nothing.
func (k *KeyMap) actions() []key.Binding {
	return []key.Binding{k.Cutoff, k.Pause, k.Freeze, k.Kill, k.Restore}
}

// reading is the short help of a pane one only reads and scrolls (the
// audit log, the fleet).
func (k *KeyMap) reading() []key.Binding {
	return []key.Binding{k.Back, k.Up, k.Down, k.PageDown, k.Help, k.Quit}
}

// views is the keys that switch panes, for help.
func (k *KeyMap) views() []key.Binding {
	return []key.Binding{k.Details, k.Audit, k.Fleet, k.Filter, k.Sort, k.HideStopped, k.Back, k.Help, k.Quit}
}

// dialog is the confirmation dialog's keys, for help.
func (k *KeyMap) dialog() []key.Binding {
	return []key.Binding{k.Confirm, k.Cancel, k.Press, k.NextButton, k.PrevButton}
}

// pressed says whether a key press is one of b's keys, enabled or not, so
// a disabled key can say why it does nothing.
func pressed(k tea.KeyPressMsg, b key.Binding) bool {
	for _, s := range b.Keys() {
		if s == k.String() {
			return true
		}
	}
	return false
}
