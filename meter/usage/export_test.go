package usage

// BufferCap exposes the memory a parser holds between writes, so the
// external tests can check it stays bounded.
func BufferCap(p *Parser) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fr.capacity()
}
