package budget

import "strings"

// shortID is how many leading characters of a container id Docker shows
// and bottles may be registered with; the index is keyed by them.
const shortID = 12

// containerRef is one container a bottle was registered with.
type containerRef struct {
	id, slug string
}

// indexContainers replaces a bottle's entries in the container index:
// old's containers go, bt's come (either may be nil).
func (b *Book) indexContainers(old, bt *Bottle) {
	if old != nil {
		for _, c := range old.Containers {
			if len(c) >= shortID && b.containers[c[:shortID]].slug == old.Slug {
				delete(b.containers, c[:shortID])
			}
		}
	}
	if bt != nil {
		for _, c := range bt.Containers {
			if len(c) >= shortID {
				b.containers[c[:shortID]] = containerRef{c, bt.Slug}
			}
		}
	}
}

// BottleOfContainer returns the bottle registered with a container, given
// the container's full id (as a peer's cgroup names it): a registered id of
// at least 12 characters that prefixes it. Every report a sidecar sends is
// checked with it, so it is a map lookup, not a scan of the bottles.
func (b *Book) BottleOfContainer(id string) (string, bool) {
	if len(id) < shortID {
		return "", false
	}
	ref, ok := b.containers[id[:shortID]]
	if !ok || !strings.HasPrefix(id, ref.id) {
		return "", false
	}
	return ref.slug, true
}
