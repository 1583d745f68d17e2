package enforcement

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
)

// The labels through which `bottle launch` registers a bottle with no API
// call (SPEC section 6).
const (
	LabelBudget   = "bot-bottle.budget"
	LabelParent   = "bot-bottle.parent"
	LabelShutdown = "bot-bottle.shutdown"
	LabelAgent    = "bot-bottle.agent"
	LabelRate     = "bot-bottle.rate"
)

// LabelDaemon scopes a container or a network to one daemon. A daemon
// started with a daemon id (`serve --daemon-id ID`) takes as its own only
// what is labelled bot-bottle.daemon=ID; a daemon without one, as users run
// it, only what carries no such label (or an empty one). Neither registers,
// identifies as a peer, nor acts on anything of another daemon's, so two
// daemons can share an engine, and the tests, which label everything they
// create with their own daemon's id, never reach a user's daemon.
const LabelDaemon = "bot-bottle.daemon"

// OfDaemon reports whether an object with these labels belongs to the
// daemon whose id is daemonID ("" for a daemon without one).
func OfDaemon(labels map[string]string, daemonID string) bool {
	return labels[LabelDaemon] == daemonID
}

// ContainerState is what discovery last learned about a container.
type ContainerState string

// The states a Discovered record reports.
const (
	StateRunning ContainerState = "running"
	StateCreated ContainerState = "created" // exists, never started
	StateDied    ContainerState = "died"    // exited or stopped
	StateRemoved ContainerState = "removed"
)

// Discovered is one bottle container seen by Watch, with what its labels
// ask of the daemon. A container whose labels do not parse is still
// reported, with Err saying why, so the daemon can surface the mistake
// instead of silently ignoring the bottle.
type Discovered struct {
	ContainerID string
	Name        string
	Bottle      string // slug
	Agent       string
	Parent      string
	Budget      budget.Limits
	Shutdown    budget.Policy
	Rate        budget.Rates
	State       ContainerState
	Labels      map[string]string
	// Err wraps budget.ErrInvalid for each label that did not parse.
	Err error
}

// BottleOf returns the slug a container's labels put it in: the
// bot-bottle.bottle label, else its bot-bottle-* Compose project. ok is
// false for containers that are not bottles.
func BottleOf(labels map[string]string) (slug string, ok bool) {
	if s := labels[LabelBottle]; s != "" {
		return s, true
	}
	if p := labels[LabelProject]; strings.HasPrefix(p, ProjectPrefix) && len(p) > len(ProjectPrefix) {
		return strings.TrimPrefix(p, ProjectPrefix), true
	}
	return "", false
}

// ParseLabels reads a bottle container's labels into a Discovered record
// (without container id, name or state). ok is false when the labels do not
// make the container a bottle's.
func ParseLabels(labels map[string]string) (d Discovered, ok bool) {
	slug, ok := BottleOf(labels)
	if !ok {
		return Discovered{}, false
	}
	d = Discovered{Bottle: slug, Labels: labels}
	errs := []error{budget.ValidateSlug("label "+LabelBottle, slug)}
	if v := labels[LabelAgent]; v != "" {
		d.Agent = v
		errs = append(errs, budget.ValidateName("label "+LabelAgent, v))
	}
	if v := labels[LabelParent]; v != "" {
		d.Parent = v
		errs = append(errs, budget.ValidateSlug("label "+LabelParent, v))
	}
	if v := labels[LabelShutdown]; v != "" {
		p, err := budget.ParsePolicy(v)
		d.Shutdown = p
		errs = append(errs, labelErr(LabelShutdown, err))
	}
	if v := labels[LabelBudget]; v != "" {
		l, err := ParseBudget(v)
		d.Budget = l
		errs = append(errs, labelErr(LabelBudget, err))
	}
	if v := labels[LabelRate]; v != "" {
		r, err := ParseRates(v)
		d.Rate = r
		errs = append(errs, labelErr(LabelRate, err))
	}
	d.Err = errors.Join(errs...)
	return d, true
}

func labelErr(label string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("label %s: %w", label, err)
}

// ParseBudget reads a budget label, `claude=1M,codex=500k`, into limits; a
// provider's several limits are joined with '+' (`claude=5M/day+50M/month`).
// Every bad entry is reported, and the good ones are kept.
func ParseBudget(s string) (budget.Limits, error) {
	l := budget.Limits{}
	err := parseEntries(s, "tokens, e.g. claude=1M or claude=5M/day+50M/month", budget.ParseLimitSet,
		func(p string, set budget.LimitSet) { l[p] = set })
	return l, err
}

// ParseRates reads a rate label, `claude=300k/min,codex=1M/min`, into rate
// guards. Every bad entry is reported, and the good ones are kept.
func ParseRates(s string) (budget.Rates, error) {
	r := budget.Rates{}
	err := parseEntries(s, "tokens/min", budget.ParseRate, func(p string, n int64) { r[p] = n })
	return r, err
}

// parseEntries reads comma-separated provider=value entries, each value
// read by parse and kept by keep; want names the value in errors.
func parseEntries[V any](s, want string, parse func(string) (V, error), keep func(string, V)) error {
	var errs []error
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		provider, amount, found := strings.Cut(item, "=")
		provider, amount = strings.TrimSpace(provider), strings.TrimSpace(amount)
		if !found {
			errs = append(errs, fmt.Errorf("%w: %q: want provider=%s", budget.ErrInvalid, item, want))
			continue
		}
		if err := budget.ValidateName("provider", provider); err != nil {
			errs = append(errs, err)
			continue
		}
		n, err := parse(amount)
		if err != nil {
			errs = append(errs, fmt.Errorf("provider %s: %w", provider, err))
			continue
		}
		keep(provider, n)
	}
	return errors.Join(errs...)
}
