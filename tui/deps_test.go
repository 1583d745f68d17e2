package tui_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoDockerClient keeps the domain and the dashboard free of the Docker
// client (STYLE principle 1): only enforcement may import it.
func TestNoDockerClient(t *testing.T) {
	for _, pkg := range []string{"github.com/bot-bottle/bottlecap/tui", "github.com/bot-bottle/bottlecap/budget"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "github.com/moby/") || strings.HasPrefix(dep, "github.com/docker/docker") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
