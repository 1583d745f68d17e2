package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// bottleRegisterCommand is `bottlecap bottle register SLUG [flags]`:
// register a bottle or update its registration.
func (m *Main) bottleRegisterCommand() *cobra.Command {
	var req api.BottleRequest
	var df *daemonFlags
	cmd := &cobra.Command{
		Use:   "register SLUG",
		Short: "Register a bottle, or update its registration",
		Long: "Registers a bottle with the daemon, or updates it: what the labels of bot-bottle's containers do " +
			"(bot-bottle.budget, bot-bottle.parent, bot-bottle.shutdown, bot-bottle.agent), by hand.",
		Example: "bottlecap bottle register dev-1 --agent implementer --budget claude=1M,codex=500k\n" +
			"bottlecap bottle register dev-1 --budget claude=5M/day+50M/month --shutdown freeze\n" +
			"bottlecap bottle register dev-1-rev --parent dev-1 --agent-budget reviewer:claude=200k",
		Args: positional(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validateRegistration(args[0], req); err != nil {
				return asUsage(err)
			}
			b, err := m.client(df).PutBottle(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return writeReply(m, df, b, printBottle)
		},
	}
	df = addDaemonFlags(cmd, true)
	registrationFlags(cmd.Flags(), &req)
	return cmd
}

// registrationFlags declares the registration's fields as flags.
func registrationFlags(fs *pflag.FlagSet, req *api.BottleRequest) {
	fs.StringVar(&req.Agent, "agent", "", "the bottle's agent `name`")
	fs.StringVar(&req.Name, "name", "", "the bot-bottle bottle (manifest) `name`, for settings defaults")
	fs.StringVar(&req.Parent, "parent", "", "the `slug` of the bottle that launched this one")
	fs.Func("budget", "the bottle's `limits`, e.g. claude=1M,codex=500k or claude=5M/day+50M/month (repeatable)", func(s string) error {
		return addLimits(&req.Budget, s)
	})
	fs.Func("agent-budget", "one agent's `limits`, e.g. reviewer:claude=200k (repeatable)", func(s string) error {
		return addAgentBudget(req, s)
	})
	fs.Func("shutdown", "the `policy` when a budget is exhausted: cutoff, pause, freeze or kill", func(s string) error {
		p, err := budget.ParsePolicy(s)
		req.Shutdown = string(p)
		return err
	})
	fs.Func("rate", "the bottle's rate `guards`, tokens per minute, e.g. claude=300k/min (repeatable)", func(s string) error {
		return addRates(&req.Rate, s)
	})
	fs.Func("container", "a container `id` of the bottle (repeatable, or comma-separated)", func(s string) error {
		req.Containers = append(req.Containers, splitList(s)...)
		return nil
	})
}

// addLimits merges "claude=1M,codex=500k/day" into *into.
func addLimits(into *budget.Limits, s string) error {
	l, err := parseLimits(splitList(s))
	if err != nil {
		return err
	}
	if *into == nil {
		*into = budget.Limits{}
	}
	for p, n := range l {
		(*into)[p] = n
	}
	return nil
}

// addRates merges "claude=300k/min,codex=1M/min" into *into, checking
// every guard before anything is sent.
func addRates(into *map[string]string, s string) error {
	items := splitList(s)
	if len(items) == 0 {
		return errors.New("no provider=rate given, e.g. claude=300k/min")
	}
	if *into == nil {
		*into = map[string]string{}
	}
	for _, it := range items {
		p, rate, ok := strings.Cut(it, "=")
		if !ok {
			return fmt.Errorf("%q: want provider=rate, e.g. claude=300k/min", it)
		}
		if err := budget.ValidateName("provider", p); err != nil {
			return err
		}
		n, err := budget.ParseRate(rate)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		(*into)[p] = budget.FormatRate(n)
	}
	return nil
}

// addAgentBudget merges "reviewer:claude=200k,codex=100k" into the request.
func addAgentBudget(req *api.BottleRequest, s string) error {
	agent, limits, ok := strings.Cut(s, ":")
	if !ok {
		return fmt.Errorf("%q: want agent:provider=amount, e.g. reviewer:claude=200k", s)
	}
	if err := budget.ValidateName("agent", agent); err != nil {
		return err
	}
	if req.AgentBudgets == nil {
		req.AgentBudgets = map[string]budget.Limits{}
	}
	l := req.AgentBudgets[agent]
	if err := addLimits(&l, limits); err != nil {
		return err
	}
	req.AgentBudgets[agent] = l
	return nil
}

// validateRegistration checks names before anything is sent, so a typo is
// a usage error (exit 2) rather than a daemon error.
func validateRegistration(slug string, req api.BottleRequest) error {
	if err := budget.ValidateSlug("bottle", slug); err != nil {
		return err
	}
	if req.Parent != "" {
		if err := budget.ValidateSlug("--parent", req.Parent); err != nil {
			return err
		}
	}
	if req.Agent != "" {
		return budget.ValidateName("--agent", req.Agent)
	}
	return nil
}
