package settings

import (
	"errors"

	"github.com/bot-bottle/bottlecap/budget"
)

// rates reads a provider -> rate guard mapping (SPEC section 12):
// `claude: 300k/min`.
func (p *settingsParser) rates(f field) (budget.Rates, error) {
	r := budget.Rates{}
	err := p.fields(f.value, f.path, func(e field) error {
		if err := p.checkName(e, "provider"); err != nil {
			return err
		}
		s, err := p.scalar(e)
		if err != nil {
			return err
		}
		n, err := budget.ParseRate(s)
		var te *budget.TokenError
		if errors.As(err, &te) {
			return p.fail(e.value, e.path, "%s", te.Reason)
		}
		if err != nil {
			return err
		}
		r[e.name] = n
		return nil
	})
	return r, err
}
