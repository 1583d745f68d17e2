package meter

import (
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

// FuzzCleanPath: for any request path, the cleaned spelling is rooted and
// a fixpoint (cleaning it again changes nothing), with no doubled slash,
// no "." or ".." segment, no trailing slash, no ";params" and no "\"
// left for an upstream to fold; and when it calls a metered endpoint, the
// path the meter forwards instead is clean too and calls that same
// endpoint, so the upstream cannot fold it into another call.
func FuzzCleanPath(f *testing.F) {
	for _, seed := range []string{
		"/v1/messages", "//v1/messages/", "/v1/./x/../messages;a=b", `\v1\messages`, "v1/messages",
		"/V1BETA/models/g:GENERATECONTENT/", "/v1internal:generateContent", "/a;/..;/b", "", "/", ".", "..", "/./../",
	} {
		f.Add(seed)
	}
	apis := budget.ProviderAPIs()
	f.Fuzz(func(t *testing.T, p string) {
		c := cleanPath(p)
		if !strings.HasPrefix(c, "/") || cleanPath(c) != c {
			t.Fatalf("cleanPath(%q) = %q: not rooted, or not a fixpoint (%q)", p, c, cleanPath(c))
		}
		if strings.Contains(c, "//") || strings.ContainsAny(c, `;\`) || c != "/" && strings.HasSuffix(c, "/") {
			t.Fatalf("cleanPath(%q) = %q leaves something to fold", p, c)
		}
		for _, seg := range strings.Split(c, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("cleanPath(%q) = %q keeps a %q segment", p, c, seg)
			}
		}
		for _, api := range apis {
			for _, ep := range api.Endpoints {
				if !ep.Matches(c) {
					continue
				}
				fwd := ep.Canonical(c)
				if cleanPath(fwd) != fwd || !ep.Matches(fwd) {
					t.Fatalf("%q calls %s%s but is forwarded as %q, which cleans to %q or calls something else",
						p, ep.Path, ep.Suffix, fwd, cleanPath(fwd))
				}
			}
		}
	})
}
