package estimate

// Scanned is what one pass over a body found, for the table tests.
type Scanned struct {
	Text, Images   int64
	Tools, Chained bool
	Model          string
	Previous       string
	OK             bool
}

// Scan exposes the body scanner.
func Scan(body []byte) Scanned {
	c, ok := scan(body)
	return Scanned{Text: c.text, Images: c.images, Tools: c.tools, Chained: c.chained, Model: c.model, Previous: c.previous, OK: ok}
}

// Tracked is the number of models and providers e keeps ratios for.
func Tracked(e *Estimator) (models, providers int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.input.models), len(e.input.providers)
}
