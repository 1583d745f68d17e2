package settings_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

func TestNotifySinks(t *testing.T) {
	s := parse(t, `notify:
  - webhook: https://hooks.slack.com/services/T0/B0/x
    format: slack
    events: [crossing, action_failed]
  - name: signed
    webhook: http://127.0.0.1:9000/hooks/bottlecap
    secret: s3cret
    timeout: 30s
  - exec: [/usr/local/bin/page-oncall, --team, infra]
`)
	want := []budget.NotifySink{
		{Name: "hooks.slack.com", Webhook: "https://hooks.slack.com/services/T0/B0/x", Format: "slack",
			Events: []budget.NoticeKind{budget.NoticeCrossing, budget.NoticeActionFailed}, Timeout: 10 * time.Second},
		{Name: "signed", Webhook: "http://127.0.0.1:9000/hooks/bottlecap", Format: "json", Secret: "s3cret", Timeout: 30 * time.Second},
		{Name: "page-oncall", Exec: []string{"/usr/local/bin/page-oncall", "--team", "infra"}, Timeout: 10 * time.Second},
	}
	if !reflect.DeepEqual(s.Notify, want) {
		t.Errorf("notify:\n got %+v\nwant %+v", s.Notify, want)
	}
	if s := parse(t, "notify:"); s.Notify != nil {
		t.Errorf("an empty notify: = %+v, want no sinks", s.Notify)
	}
}

func TestBadNotifySinks(t *testing.T) {
	checkErrors(t, []errCase{
		{"notify: http://x", 1, 9, "notify", `want a list of sinks (each a webhook: or an exec:), got "http://x"`},
		{"notify:\n  - http://x", 2, 5, "notify[0]", `want a mapping, got "http://x"`},
		{"notify:\n  - events: [warn]", 2, 5, "notify[0]", "a sink needs a webhook: URL or an exec: [program, args…]"},
		{"notify:\n  - webhook: ftp://x/y", 2, 14, "notify[0].webhook", `"ftp://x/y" is not an http or https URL`},
		{"notify:\n  - webhook: /hooks", 2, 14, "notify[0].webhook", `"/hooks" is not an http or https URL`},
		{"notify:\n  - webhook: http://x\n    exec: [/bin/true]", 2, 5, "notify[0]", "not both"},
		{"notify:\n  - webhook: http://x\n    format: teams", 3, 13, "notify[0].format", `"teams" is not a format (want json`},
		{"notify:\n  - exec: [/bin/true]\n    format: slack", 3, 5, "notify[0].format", "format: is for webhooks"},
		{"notify:\n  - exec: [/bin/true]\n    secret: x", 3, 5, "notify[0].secret", "secret: signs a webhook's body"},
		{"notify:\n  - exec: /bin/true", 2, 11, "notify[0].exec", `want a list: the program and its arguments`},
		{"notify:\n  - exec: []", 2, 11, "notify[0].exec", `want a list: the program and its arguments`},
		{"notify:\n  - exec: [[a]]", 2, 12, "notify[0].exec[0]", "want a word of the command line, got a list"},
		{"notify:\n  - webhook: http://x\n    events: [warn, crossed]", 3, 20, "notify[0].events[1]", `"crossed" is not a notice kind (want warn, crossing, action_done, action_failed, reset, rate)`},
		{"notify:\n  - webhook: http://x\n    events: []", 3, 13, "notify[0].events", "leave events: out for all"},
		{"notify:\n  - webhook: http://x\n    events: warn", 3, 13, "notify[0].events", `want a list of kinds`},
		{"notify:\n  - webhook: http://x\n    timeout: 1h", 3, 14, "notify[0].timeout", "1h is out of range (want from 1s to 5m0s)"},
		{"notify:\n  - webhook: http://x\n    timeout: soon", 3, 14, "notify[0].timeout", `"soon" is not a duration`},
		{"notify:\n  - webhook: http://x\n    name: two words", 3, 11, "notify[0].name", `"two words" is not a sink name`},
		{"notify:\n  - webhook: http://x\n    url: http://y", 3, 5, "notify[0].url", `unknown key "url" (want name, webhook, format, secret, exec, events or timeout)`},
		{"notify:\n  - webhook: http://x/a\n  - webhook: http://x/b", 3, 5, "notify[1]", `a sink named "x" is already listed at line 2; give each sink a name: of its own`},
		{"notify:\n  - name: ops\n    webhook: http://x/a\n  - name: ops\n    exec: [/bin/true]", 4, 5, "notify[1]", `a sink named "ops" is already listed at line 2`},
	})
}
