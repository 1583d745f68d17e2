package main

import (
	"strings"
	"testing"
)

// TestServeRefusesBadDaemonID: a daemon id is a label value every
// bottle's containers must carry, so it takes a slug's characters; any
// other is refused before the daemon claims its socket.
func TestServeRefusesBadDaemonID(t *testing.T) {
	r := runCLI(t, nil, "serve", "--docker=false", "--daemon-id", "my daemon")
	wantCode(t, r, 1)
	if want := `daemon id "my daemon": want 1-128 letters`; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
}
