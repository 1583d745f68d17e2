package meter_test

import (
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// TestMitmproxyAddonReportsToRealDaemon runs the Python addon's live test
// against a real daemon socket and checks that its reports are in the
// ledger, counted as the Go parser counts them.
func TestMitmproxyAddonReportsToRealDaemon(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	d := startDaemon(t)
	cmd := exec.Command(py, "-m", "unittest", "-v", "test_bottlecap_addon.LiveDaemonTest")
	cmd.Dir = filepath.Join("..", "integrations", "mitmproxy")
	// The test's home and socket, also where the addon would look by
	// default: never a user's.
	cmd.Env = append(cmd.Environ(), "BOTTLECAP_TEST_SOCKET="+d.Sock, "BOTTLECAP_TEST_BOTTLE=py-live",
		"BOT_BOTTLE_HOME="+d.Dir, "BOTTLECAP_SOCKET="+d.Sock)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python live test: %v\n%s", err, out)
	}
	fx := fixtures(t)
	want := map[string]fixture{
		"chatcmpl-D8Z5f52zQqikDBEKQMQoYcWMcWPeU": fx["openai-chat-nonstream.json"],
		"msg_01AusY9WEbCaj3N7Tv5J4YjH":           fx["anthropic-messages-stream-tooluse.sse"],
	}
	rs := d.reports("py-live")
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
	if len(rs) != len(want) {
		t.Fatalf("ledger holds %d reports, want %d (each once):\n%+v\npython:\n%s", len(rs), len(want), rs, out)
	}
	for _, r := range rs {
		w, ok := want[r.ID]
		if !ok || r.Usage != w.Usage || !r.Complete || r.Agent != "implementer" {
			t.Errorf("report %+v, want usage %+v complete (known: %v)", r, w.Usage, ok)
		}
	}
}
