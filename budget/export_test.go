package budget

// SumMoves is how many subtree sums registrations, re-parentings and
// forgets have changed so far, so a test can show that the work follows a
// bottle's lineage and not the size of the forest.
func (b *Book) SumMoves() int { return b.sumMoves }

// RateBuckets is how many one-second buckets a window holds.
func RateBuckets(w *RateWindow) int { return len(w.buckets) }

// SettingsKeys are the keys SettingsChanges compares.
func SettingsKeys() []string {
	out := make([]string, len(settingsKeys))
	for i, k := range settingsKeys {
		out[i] = k.name
	}
	return out
}
