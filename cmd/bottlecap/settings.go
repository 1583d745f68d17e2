package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/settings"
)

// settingsPath is the settings file under the home directory.
func (m *Main) settingsPath() string { return filepath.Join(m.home(), "settings.yml") }

// settingsCommand is `bottlecap settings check [FILE]`.
func (m *Main) settingsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "settings",
		Short: "Check a settings file",
	}
	cmd.AddCommand(m.settingsCheckCommand())
	return cmd
}

// settingsCheck is the outcome of `settings check`, and its --json.
type settingsCheck struct {
	Path     string   `json:"path"`
	OK       bool     `json:"ok"`
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings"`
	// Summary is what the file puts in force, when it is ok.
	Summary string `json:"summary,omitempty"`
	// Fleet is the fleet the file (or $BOTTLECAP_FLEET_DSN) makes this
	// host a member of, when it is ok; absent for a host alone.
	Fleet *fleetCheck `json:"fleet,omitempty"`
}

// settingsCheckCommand is `bottlecap settings check [FILE]`: the file must
// exist and parse (exit 1 naming the path, and the line:column of a bad
// value); names that look like mistakes are warnings (exit 0).
func (m *Main) settingsCheckCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a settings file (default $BOT_BOTTLE_HOME/settings.yml)",
		Long: "Reads a settings file as the daemon would. It fails (exit 1) when the file is missing or does not parse, " +
			"naming the path and the line:column of the bad value. It warns (on stderr, exit 0) about provider names " +
			"that look like a typo of a known provider and operator groups that do not exist on this host. " +
			"When the file's fleet: section or $BOTTLECAP_FLEET_DSN makes this host a fleet member, a second line sums up " +
			"the fleet: the host name, where the DSN comes from (never the DSN, which may hold a password), the fleet budget " +
			"with its windows, fail_open and the lease size; it warns when the daemon could not join it.",
		Example: "bottlecap settings check\nbottlecap settings check /etc/bottlecap/settings.yml --json",
		Args:    positional(0, 1),
		RunE: func(_ *cobra.Command, args []string) error {
			path := m.settingsPath()
			if len(args) == 1 {
				path = args[0]
			}
			return m.runSettingsCheck(path, asJSON)
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func (m *Main) runSettingsCheck(path string, asJSON bool) error {
	s, err := loadForCheck(path)
	res := settingsCheck{Path: path, OK: err == nil, Warnings: []string{}}
	if err != nil {
		res.Error = err.Error()
	} else {
		res.Warnings = append(providerTypos(s), missingGroups(s.Operators)...)
		var fleetWarnings []string
		res.Fleet, fleetWarnings = checkFleet(s, m.Getenv(settings.EnvFleetDSN), hostname())
		res.Warnings = append(res.Warnings, fleetWarnings...)
		res.Summary = fmt.Sprintf("precedence %s, shutdown %s, warn at %g%%, %d global limits, %d bottle and %d agent defaults, timezone %s",
			s.Precedence, s.Shutdown, s.WarnAt*100, len(s.Budget), len(s.Bottles), len(s.Agents), s.Timezone)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(m.Stderr, "bottlecap settings check: warning: %s: %s\n", path, w)
	}
	if asJSON {
		if werr := writeJSON(m.Stdout, res); werr != nil {
			return werr
		}
	} else if err == nil {
		fmt.Fprintf(m.Stdout, "%s: ok (%s)\n", path, res.Summary)
		if res.Fleet != nil {
			fmt.Fprintln(m.Stdout, res.Fleet.summary())
		}
	}
	return err
}

// loadForCheck reads the file, which must exist: the daemon runs on the
// built-in defaults without one, but a file asked for by name that is not
// there is a mistake (a typo in the path, the wrong home).
func loadForCheck(path string) (*budget.Settings, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no such file (the daemon would run on the built-in defaults)", path)
	} else if err != nil {
		return nil, err
	}
	return settings.Load(path)
}

// providerTypos warns about each provider name in the settings that is not
// a known provider (the built-in ones and those under providers:) but is
// one or two letters away from one: `claud` counts nothing that `claude`
// reports.
func providerTypos(s *budget.Settings) []string {
	var out []string
	check := func(where, name string) {
		if _, known := s.Providers[name]; known {
			return
		}
		if near := nearestName(name, sortedKeys(s.Providers)); near != "" {
			out = append(out, fmt.Sprintf("%s: provider %q is not known; did you mean %q?", where, name, near))
		}
	}
	for _, p := range sortedKeys(s.Budget) {
		check("budget", p)
	}
	for _, name := range sortedKeys(s.Bottles) {
		for _, p := range sortedKeys(s.Bottles[name].Budget) {
			check("bottles: "+name+": budget", p)
		}
		for _, p := range sortedKeys(s.Bottles[name].Rate) {
			check("bottles: "+name+": rate", p)
		}
	}
	for _, name := range sortedKeys(s.Agents) {
		for _, p := range sortedKeys(s.Agents[name].Budget) {
			check("agents: "+name+": budget", p)
		}
		for _, p := range sortedKeys(s.Agents[name].Rate) {
			check("agents: "+name+": rate", p)
		}
	}
	for _, p := range sortedKeys(s.Rate) {
		check("rate", p)
	}
	for _, p := range sortedKeys(s.Weights) {
		check("weights", p)
	}
	return out
}

// nearestName is the candidate name is a likely typo of (an edit distance
// of at most a third of the candidate's length, and at least 1), or "".
func nearestName(name string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(name, c)
		if d == 0 || d > max(1, len(c)/3) {
			continue
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// missingGroups warns about each operators: entry that names a group this
// host does not have: nobody gets an operator's rights through it. Uids
// (numbers) are taken as they are: a container's uid need not be a user
// here.
func missingGroups(operators []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, op := range operators {
		if _, err := strconv.Atoi(op); err == nil || seen[op] {
			continue
		}
		seen[op] = true
		if _, err := user.LookupGroup(op); err != nil {
			out = append(out, fmt.Sprintf("operators: group %q does not exist on this host, so it grants nothing (%v)", op, err))
		}
	}
	return out
}
