package controller

import (
	"container/heap"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// allowance is tokens the daemon promised a meter for (bottle, agent,
// provider) and has not yet seen reported (SPEC section 11). What it holds
// is also counted as held in the book, at every scope its usage will
// count in, so that no grant anywhere can promise the same tokens twice.
// Allowances live in memory only: after a restart meters ask again.
type allowance struct {
	id                      string
	bottle, agent, provider string
	held                    int64
	expires                 time.Time
	index                   int // in the expiry heap
}

// maxAllowancesPerBottle bounds the live allowances of one bottle, so
// that a peer opening allowances in a loop cannot grow the daemon's
// memory: far more than a bottle's meters keep (one per agent and
// provider, or one per request in flight).
const maxAllowancesPerBottle = 4096

// allowances is the table of live allowances, guarded by Core.mu.
type allowances struct {
	byID     map[string]*allowance
	byBottle map[string]map[string]*allowance
	// expiry orders the live allowances by deadline, soonest first.
	expiry expiryHeap
}

func newAllowances() allowances {
	return allowances{byID: map[string]*allowance{}, byBottle: map[string]map[string]*allowance{}}
}

// Allow opens an allowance (no ID), or adds tokens to one and renews it
// (ID; tokens 0 only renews), granting what every scope that governs its
// (bottle, agent, provider) has room for: possibly less than asked, or
// nothing, the verdict's reason saying why. The grant and the hold are one
// critical section, so concurrent asks never promise the same tokens. An
// unknown or expired ID is ErrNotFound. A bottle the daemon does not know
// is granted what the global budget allows, as its reports would be
// counted: no row is written for it (allowances never touch the ledger).
func (c *Core) Allow(req api.AllowanceRequest) (api.Allowance, error) {
	if err := checkAllowanceRequest(req); err != nil {
		return api.Allowance{}, err
	}
	id := ""
	if req.ID == "" {
		id = newAllowanceID()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.sweepLocked(now)
	a, err := c.allowanceFor(req, id)
	if err != nil {
		return api.Allowance{}, err
	}
	granted, v := c.book.Grant(a.bottle, a.agent, a.provider, req.Tokens)
	c.holdLocked(a, granted)
	c.renewLocked(a, now)
	if granted > 0 && !v.Unlimited {
		v.Held, v.Remaining = budget.SatAdd(v.Held, granted), max(v.Remaining-granted, 0)
	}
	return c.allowanceView(a, granted, v), nil
}

// checkAllowanceRequest refuses what no allowance can be: bad names, and
// token counts below 0 or above what one report may carry.
func checkAllowanceRequest(req api.AllowanceRequest) error {
	if req.ID != "" {
		if err := checkText("id", req.ID, maxIDLen); err != nil {
			return err
		}
	}
	if req.ID == "" || req.Bottle != "" {
		if err := budget.ValidateSlug("bottle", req.Bottle); err != nil {
			return err
		}
	}
	if req.ID == "" || req.Provider != "" {
		if err := budget.ValidateName("provider", req.Provider); err != nil {
			return err
		}
	}
	if req.Agent != "" {
		if err := budget.ValidateName("agent", req.Agent); err != nil {
			return err
		}
	}
	if req.Tokens < 0 || req.Tokens > budget.MaxFieldTokens {
		return fmt.Errorf("%w: tokens: %d is out of range (want 0 to %d counted tokens)", budget.ErrInvalid, req.Tokens, budget.MaxFieldTokens)
	}
	return nil
}

// allowanceFor is the allowance a request names, or a new one with the
// given id for its (bottle, agent, provider), the agent resolved as a
// report's would be. A request naming an allowance must agree with it on
// what it gives of bottle, agent and provider. c.mu must be held.
func (c *Core) allowanceFor(req api.AllowanceRequest, id string) (*allowance, error) {
	if req.ID == "" {
		return c.openLocked(id, req.Bottle, req.Agent, req.Provider)
	}
	a, ok := c.allow.byID[req.ID]
	if !ok {
		return nil, fmt.Errorf("%w: allowance %q (expired, released or never granted: open a new one)", budget.ErrNotFound, req.ID)
	}
	for _, f := range []struct{ name, got, want string }{
		{"bottle", req.Bottle, a.bottle}, {"agent", req.Agent, a.agent}, {"provider", req.Provider, a.provider},
	} {
		if f.got != "" && f.got != f.want {
			return nil, fmt.Errorf("%w: %s: allowance %s is for %s %q, not %q", budget.ErrInvalid, f.name, a.id, f.name, f.want, f.got)
		}
	}
	return a, nil
}

// openLocked adds a new, empty allowance to the table.
func (c *Core) openLocked(id, bottle, agent, provider string) (*allowance, error) {
	if b, ok := c.book.Bottle(bottle); ok {
		agent = b.AgentName(agent)
	}
	mine := c.allow.byBottle[bottle]
	if len(mine) >= maxAllowancesPerBottle {
		return nil, fmt.Errorf("%w: bottle %s already has %d allowances open, the most it may: release some (DELETE /v1/allowances/{id})", budget.ErrConflict, bottle, len(mine))
	}
	if mine == nil {
		mine = map[string]*allowance{}
		c.allow.byBottle[bottle] = mine
	}
	a := &allowance{id: id, bottle: bottle, agent: agent, provider: provider, expires: c.now()}
	mine[id] = a
	c.allow.byID[id] = a
	heap.Push(&c.allow.expiry, a)
	return a, nil
}

// holdLocked adds n tokens to what an allowance holds, in the table and
// the book.
func (c *Core) holdLocked(a *allowance, n int64) {
	if n > 0 {
		a.held = budget.SatAdd(a.held, n)
		c.book.Hold(a.bottle, a.agent, a.provider, n)
	}
}

// renewLocked moves an allowance's deadline to a TTL from now.
func (c *Core) renewLocked(a *allowance, now time.Time) {
	a.expires = now.Add(c.allowanceTTL())
	heap.Fix(&c.allow.expiry, a.index)
}

// allowanceTTL is the settings' allowance TTL (the default when unset).
// c.mu must be held.
func (c *Core) allowanceTTL() time.Duration {
	if ttl := c.settings.AllowanceTTL; ttl > 0 {
		return ttl
	}
	return budget.DefaultAllowanceTTL
}

// allowanceView is an allowance as the API shows it.
func (c *Core) allowanceView(a *allowance, granted int64, v budget.Verdict) api.Allowance {
	return api.Allowance{ID: a.id, Bottle: a.bottle, Agent: a.agent, Provider: a.provider,
		Granted: granted, Held: a.held, Weight: maxWeight(c.settings.WeightsFor(a.provider)),
		ExpiresAt: a.expires.UTC(), Verdict: v}
}

// maxWeight is the largest of a provider's per-kind weights: raw tokens
// times it never count for less than they will once reported, so a meter
// that converts with it never asks for too little.
func maxWeight(w budget.Weights) float64 {
	return max(w.Input, w.CacheRead, w.CacheWrite, w.Output)
}

// Release gives back everything an allowance holds and closes it. Reports
// naming it later still count, and settle nothing. An unknown or expired
// id is ErrNotFound.
func (c *Core) Release(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(c.now())
	a, ok := c.allow.byID[id]
	if !ok {
		return fmt.Errorf("%w: allowance %q (expired, released or never granted)", budget.ErrNotFound, id)
	}
	c.dropLocked(a)
	return nil
}

// AllowanceBottle is the bottle an allowance is for, so that the server
// can check a peer may act for it before it does; ErrNotFound when there
// is no such allowance. An allowance's bottle never changes and its id is
// never reused, so the answer stays true.
func (c *Core) AllowanceBottle(id string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(c.now())
	a, ok := c.allow.byID[id]
	if !ok {
		return "", fmt.Errorf("%w: allowance %q (expired, released or never granted)", budget.ErrNotFound, id)
	}
	return a.bottle, nil
}

// dropLocked closes an allowance, giving back what it holds.
func (c *Core) dropLocked(a *allowance) {
	c.book.Unhold(a.bottle, a.agent, a.provider, a.held)
	a.held = 0
	heap.Remove(&c.allow.expiry, a.index)
	delete(c.allow.byID, a.id)
	mine := c.allow.byBottle[a.bottle]
	delete(mine, a.id)
	if len(mine) == 0 {
		delete(c.allow.byBottle, a.bottle)
	}
}

// dropBottleLocked closes every allowance of a forgotten bottle.
func (c *Core) dropBottleLocked(slug string) {
	for _, a := range c.allow.byBottle[slug] {
		c.dropLocked(a)
	}
}

// settleLocked lowers what an allowance holds by a committed report's
// counted tokens (not below 0). It runs in the hold of c.mu in which the
// book counts the report, so that no reader ever sees the report both
// counted as used and still held. An id that names no live allowance, or
// one of another bottle or provider, settles nothing: the report counts
// all the same. The agent need not match: a bottle registered after its
// allowance opened resolves its reports' agent anew, and settling is then
// what a release of those tokens is, which no scope can be overspent by.
func (c *Core) settleLocked(id string, r budget.Report) {
	a, ok := c.allow.byID[id]
	if !ok || a.bottle != r.Bottle || a.provider != r.Provider {
		return
	}
	n := min(a.held, r.Counted)
	a.held -= n
	c.book.Unhold(a.bottle, a.agent, a.provider, n)
}

// sweepLocked moves the book's windows to now, ends the fleet leases
// whose local deadline came, and closes the allowances whose holders
// stopped renewing them before now: a dead meter's holds stop denying
// others. It runs before every answer that reads usage or
// holds, and costs a look at the heap's top when nothing is due.
func (c *Core) sweepLocked(now time.Time) {
	c.advanceLocked(now)
	c.expireLeasesLocked(now)
	h := c.allow.expiry
	for len(h) > 0 && !h[0].expires.After(now) {
		c.dropLocked(h[0])
		h = c.allow.expiry
	}
}

// allowanceTotals are the live allowances and what they hold host-wide
// per provider. c.mu must be held.
func (c *Core) allowanceTotalsLocked() (n int, held map[string]int64) {
	held = map[string]int64{}
	for _, p := range c.book.Providers() {
		if _, _, g := c.book.Held("", "", p); g > 0 {
			held[p] = g
		}
	}
	return len(c.allow.byID), held
}

// newAllowanceID is a fresh random id: unguessable, so that one peer
// cannot settle or renew another's allowance by naming it.
func newAllowanceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it aborts the program instead)
	return "al-" + hex.EncodeToString(b[:])
}

// expiryHeap is the live allowances as a min-heap by deadline
// (container/heap); each allowance knows its index, so a renewal moves it
// and a release removes it in O(log n).
type expiryHeap []*allowance

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *expiryHeap) Push(x any) {
	a := x.(*allowance)
	a.index = len(*h)
	*h = append(*h, a)
}

func (h *expiryHeap) Pop() any {
	old := *h
	a := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return a
}
