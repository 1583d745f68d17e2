package budget

// SumMoves is how many subtree sums registrations, re-parentings and
// forgets have changed so far, so a test can show that the work follows a
// bottle's lineage and not the size of the forest.
func (b *Book) SumMoves() int { return b.sumMoves }
