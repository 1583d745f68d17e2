package fleet

import "github.com/bot-bottle/bottlecap/budget"

// KnownFrom is what a view of the fleet tells a host's book of each
// provider the fleet budget limits: every host's shipped usage in each
// window (lifetime: their shipped totals), and the host's own lifetime
// shipped usage, both from the view's one snapshot.
func KnownFrom(v View, host string, f *budget.Fleet) map[string]budget.FleetKnown {
	out := make(map[string]budget.FleetKnown, len(f.Budget))
	for p, set := range f.Budget {
		k := budget.FleetKnown{Windows: make([]budget.FleetWindowUse, len(set))}
		for i, l := range set {
			k.Windows[i].Window = l.Window
			if l.Window.Calendar() {
				_, k.Windows[i].ResetsAt = l.Window.Bounds(v.Refreshed, f.Location())
			}
		}
		for _, h := range v.Hosts {
			if h.Host == host {
				k.OwnShipped = h.Lifetime[p]
			}
			for i, l := range set {
				n := h.Lifetime[p]
				if l.Window != budget.LifeWindow {
					n = h.Window[p][l.Window]
				}
				k.Windows[i].Used = budget.SatAdd(k.Windows[i].Used, n)
			}
		}
		out[p] = k
	}
	return out
}
