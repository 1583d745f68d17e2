package settings

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
	"go.yaml.in/yaml/v3"
)

// notify reads the notify: list of sinks (SPEC section 13):
//
//	notify:
//	  - webhook: https://hooks.slack.com/services/…
//	    format: slack
//	    events: [crossing, action_failed]
//	  - name: pager
//	    exec: [/usr/local/bin/page-oncall, --team, infra]
func (p *settingsParser) notify(f field) ([]budget.NotifySink, error) {
	if isNull(f.value) {
		return nil, nil
	}
	if f.value.Kind != yaml.SequenceNode {
		return nil, p.fail(f.value, f.path, "want a list of sinks (each a webhook: or an exec:), got %s", describe(f.value))
	}
	var sinks []budget.NotifySink
	named := map[string]*yaml.Node{}
	for i, n := range f.value.Content {
		e := field{name: f.name, path: fmt.Sprintf("%s[%d]", f.path, i), key: n, value: n}
		sink, err := p.sink(e)
		if err != nil {
			return nil, err
		}
		if prev, ok := named[sink.Name]; ok {
			return nil, p.fail(n, e.path, "a sink named %q is already listed at line %d; give each sink a name: of its own", sink.Name, prev.Line)
		}
		named[sink.Name] = n
		sinks = append(sinks, sink)
	}
	return sinks, nil
}

// sink reads one entry of notify:.
func (p *settingsParser) sink(f field) (budget.NotifySink, error) {
	s := budget.NotifySink{Timeout: budget.DefaultNotifyTimeout}
	var format, secret *yaml.Node
	err := p.fields(f.value, f.path, func(k field) error {
		var err error
		switch k.name {
		case "name":
			s.Name, err = p.nameValue(k, "sink") // it labels the sink's metrics
		case "webhook":
			s.Webhook, err = p.webhook(k)
		case "format":
			format = k.key
			s.Format, err = p.format(k)
		case "secret":
			secret = k.key
			s.Secret, err = p.scalar(k)
		case "exec":
			s.Exec, err = p.argv(k)
		case "events":
			s.Events, err = p.noticeKinds(k)
		case "timeout":
			s.Timeout, err = p.sinkTimeout(k)
		default:
			err = p.unknown(k, "name", "webhook", "format", "secret", "exec", "events", "timeout")
		}
		return err
	})
	if err != nil {
		return s, err
	}
	return s, p.checkSink(f, &s, format, secret)
}

// checkSink holds a sink to one target, with the options of its kind, and
// names it when the file does not.
func (p *settingsParser) checkSink(f field, s *budget.NotifySink, format, secret *yaml.Node) error {
	switch {
	case s.Webhook == "" && s.Exec == nil:
		return p.fail(f.value, f.path, "a sink needs a webhook: URL or an exec: [program, args…]")
	case s.Webhook != "" && s.Exec != nil:
		return p.fail(f.value, f.path, "a sink is a webhook: or an exec:, not both; list two sinks")
	case s.Exec != nil && format != nil:
		return p.fail(format, f.path+".format", "format: is for webhooks; an exec: sink reads the notice as JSON")
	case s.Exec != nil && secret != nil:
		return p.fail(secret, f.path+".secret", "secret: signs a webhook's body; an exec: sink has none")
	}
	if s.Webhook != "" && s.Format == "" {
		s.Format = budget.FormatJSON
	}
	if s.Name == "" {
		s.Name = defaultSinkName(*s)
	}
	return nil
}

// defaultSinkName names a sink by its target: a webhook by its URL's host,
// a program by its file name.
func defaultSinkName(s budget.NotifySink) string {
	if s.Webhook != "" {
		u, _ := url.Parse(s.Webhook) // checked by webhook
		return u.Host
	}
	return filepath.Base(s.Exec[0])
}

// webhook reads an http or https URL.
func (p *settingsParser) webhook(f field) (string, error) {
	s, err := p.scalar(f)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", p.fail(f.value, f.path, "%q is not an http or https URL (want e.g. https://hooks.example.com/bottlecap)", s)
	}
	return s, nil
}

// format reads json or slack.
func (p *settingsParser) format(f field) (string, error) {
	s, err := p.scalar(f)
	if err != nil {
		return "", err
	}
	if s != budget.FormatJSON && s != budget.FormatSlack {
		return "", p.fail(f.value, f.path, "%q is not a format (want json, the notice itself, or slack, a Slack-compatible {\"text\": …})", s)
	}
	return s, nil
}

// argv reads a program and its arguments, a non-empty list of strings.
func (p *settingsParser) argv(f field) ([]string, error) {
	if f.value.Kind != yaml.SequenceNode || len(f.value.Content) == 0 {
		return nil, p.fail(f.value, f.path, "want a list: the program and its arguments, e.g. [/usr/local/bin/notify, --quiet], got %s", describe(f.value))
	}
	var argv []string
	for i, n := range f.value.Content {
		item := fmt.Sprintf("%s[%d]", f.path, i)
		if err := p.plain(n, item); err != nil {
			return nil, err
		}
		if !isScalar(n) || (i == 0 && strings.TrimSpace(n.Value) == "") {
			return nil, p.fail(n, item, "want a word of the command line, got %s", describe(n))
		}
		argv = append(argv, n.Value)
	}
	return argv, nil
}

// noticeKinds reads the list of kinds a sink wants.
func (p *settingsParser) noticeKinds(f field) ([]budget.NoticeKind, error) {
	kinds := make([]string, len(budget.NoticeKinds))
	for i, k := range budget.NoticeKinds {
		kinds[i] = string(k)
	}
	want := strings.Join(kinds, ", ")
	if f.value.Kind != yaml.SequenceNode || len(f.value.Content) == 0 {
		return nil, p.fail(f.value, f.path, "want a list of kinds from %s (leave events: out for all), got %s", want, describe(f.value))
	}
	var out []budget.NoticeKind
	for i, n := range f.value.Content {
		item := fmt.Sprintf("%s[%d]", f.path, i)
		if err := p.plain(n, item); err != nil {
			return nil, err
		}
		if !isScalar(n) || !slices.Contains(kinds, n.Value) {
			return nil, p.fail(n, item, "%s is not a notice kind (want %s)", describe(n), want)
		}
		out = append(out, budget.NoticeKind(n.Value))
	}
	return out, nil
}

// The bounds of a sink's timeout: a delivery must have time to connect,
// and a hung sink must not hold its queue for long.
const (
	minSinkTimeout = time.Second
	maxSinkTimeout = 5 * time.Minute
)

// sinkTimeout reads a duration such as 10s.
func (p *settingsParser) sinkTimeout(f field) (time.Duration, error) {
	s, err := p.scalar(f)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, p.fail(f.value, f.path, "%q is not a duration (want e.g. 10s)", s)
	}
	if d < minSinkTimeout || d > maxSinkTimeout {
		return 0, p.fail(f.value, f.path, "%s is out of range (want from %s to %s)", s, minSinkTimeout, maxSinkTimeout)
	}
	return d, nil
}
