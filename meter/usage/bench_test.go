package usage_test

import (
	"testing"

	"github.com/bot-bottle/bottlecap/meter/usage"
)

// BenchmarkParserFixtures passes every recorded payload through a parser in
// 512-byte writes: the cost a proxy pays per byte of response, delta
// counting included.
func BenchmarkParserFixtures(b *testing.B) {
	var bodies [][]byte
	var formats []usage.Format
	var total int64
	for _, fx := range fixtures(b) {
		body := fx.body(b)
		bodies, formats = append(bodies, body), append(formats, fx.Format)
		total += int64(len(body))
	}
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		for i, body := range bodies {
			p := usage.NewParser(formats[i], "")
			for rest := body; len(rest) > 0; rest = rest[min(len(rest), 512):] {
				p.Write(rest[:min(len(rest), 512)])
			}
			_ = p.Result()
		}
	}
}
