package deploy_test

import (
	"bytes"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/bot-bottle/bottlecap/enforcement"
)

// composeFile is the part of the Compose file format that
// deploy/compose/compose.yaml uses. The real-engine test brings the file up
// from this reading of it (no docker compose binary is needed), and any key
// outside it fails the test, so the file cannot grow what the test ignores.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Networks map[string]composeNetwork `yaml:"networks"`
}

type composeService struct {
	Image       string              `yaml:"image"`
	Name        string              `yaml:"container_name"`
	DependsOn   []string            `yaml:"depends_on"`
	Networks    map[string]struct{} `yaml:"networks"`
	Environment map[string]string   `yaml:"environment"`
	Labels      map[string]string   `yaml:"labels"`
	Volumes     []string            `yaml:"volumes"`
	GroupAdd    []string            `yaml:"group_add"`
	ReadOnly    bool                `yaml:"read_only"`
	CapDrop     []string            `yaml:"cap_drop"`
	SecurityOpt []string            `yaml:"security_opt"`
}

type composeNetwork struct {
	Internal bool `yaml:"internal"`
}

// composeVars are the variables the compose file is interpolated with.
type composeVars map[string]string

// interpolation is ${VAR}, ${VAR:-default} or ${VAR:?message}; $$ is a $.
var interpolation = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}`)

// loadCompose reads deploy/compose/compose.yaml as docker compose would
// with vars set: interpolated, then decoded strictly.
func loadCompose(t *testing.T, vars composeVars) composeFile {
	t.Helper()
	raw := readFile(t, filepath.Join(root, "deploy/compose/compose.yaml"))
	var missing []string
	text := interpolation.ReplaceAllStringFunc(raw, func(m string) string {
		if m == "$$" {
			return "$"
		}
		g := interpolation.FindStringSubmatch(m)
		if v := vars[g[1]]; v != "" {
			return v
		}
		switch g[2] {
		case ":-":
			return g[3]
		case ":?":
			missing = append(missing, g[1]+" ("+g[3]+")")
		}
		return ""
	})
	if len(missing) > 0 {
		t.Fatalf("compose.yaml needs %s", strings.Join(missing, ", "))
	}
	var f composeFile
	dec := yaml.NewDecoder(bytes.NewReader([]byte(text)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return f
}

// startOrder is the services, each after those it depends on.
func (f composeFile) startOrder(t *testing.T) []string {
	t.Helper()
	var order []string
	for len(order) < len(f.Services) {
		n := len(order)
		for _, name := range slices.Sorted(maps.Keys(f.Services)) {
			if !slices.Contains(order, name) && !slices.ContainsFunc(f.Services[name].DependsOn, func(d string) bool { return !slices.Contains(order, d) }) {
				order = append(order, name)
			}
		}
		if len(order) == n {
			t.Fatalf("compose.yaml: depends_on has a cycle or an unknown service among %v", slices.Collect(maps.Keys(f.Services)))
		}
	}
	return order
}

// networkNames is a service's networks, sorted.
func (s composeService) networkNames() []string {
	return slices.Sorted(maps.Keys(s.Networks))
}

// testVars are the variables a test gives; an operator gives the same.
func testVars(slug, home, gid string) composeVars {
	return composeVars{"BOTTLE": slug, "AGENT_IMAGE": "agent-image", "METER_IMAGE": "meter-image",
		"BOT_BOTTLE_HOME": home, "BOTTLECAP_GID": gid, "BUDGET": "claude=1k"}
}

// TestComposeTopology holds compose.yaml to bot-bottle's topology and to
// the sidecar image, without an engine: what the real-engine test relies
// on and what the README tells operators.
func TestComposeTopology(t *testing.T) {
	f := loadCompose(t, testVars("demo-1", "/srv/bb", "4242"))
	if slug, ok := enforcement.BottleOf(map[string]string{enforcement.LabelProject: f.Name}); !ok || slug != "demo-1" {
		t.Errorf("project %q: the daemon reads bottle %q (%v), want demo-1", f.Name, slug, ok)
	}
	if got := slices.Sorted(maps.Keys(f.Services)); !slices.Equal(got, []string{"agent", "meter"}) {
		t.Fatalf("services %v, want agent and meter", got)
	}
	if !f.Networks["internal"].Internal || f.Networks["egress"].Internal {
		t.Errorf("networks %+v: want internal internal and egress not", f.Networks)
	}
	agent, meter := f.Services["agent"], f.Services["meter"]
	if got := agent.networkNames(); !slices.Equal(got, []string{"internal"}) {
		t.Errorf("the agent is on %v, want only the internal network", got)
	}
	if got := meter.networkNames(); !slices.Equal(got, []string{"egress", "internal"}) {
		t.Errorf("the meter is on %v, want internal and egress", got)
	}
	if got := f.startOrder(t); !slices.Equal(got, []string{"meter", "agent"}) {
		t.Errorf("start order %v, want the meter before the agent", got)
	}
	img := sidecarImage(t)
	listen := "http://meter:" + img.port
	for k, want := range map[string]string{"ANTHROPIC_BASE_URL": listen, "OPENAI_BASE_URL": listen + "/v1", "GOOGLE_GEMINI_BASE_URL": listen} {
		if got := agent.Environment[k]; got != want {
			t.Errorf("agent %s=%q, want %q (the meter's service name and port)", k, got, want)
		}
	}
	d, ok := enforcement.ParseLabels(withProject(agent.Labels, f.Name))
	if !ok || d.Err != nil || d.Budget["claude"].String() != "1000" || d.Agent != "claude" {
		t.Errorf("the agent's labels %v: the daemon reads %+v (%v)", agent.Labels, d, d.Err)
	}
	if agent.Name != enforcement.ProjectPrefix+"demo-1" {
		t.Errorf("the agent's container is named %q, want %s (the container a freeze commits)", agent.Name, enforcement.ProjectPrefix+"demo-1")
	}
	if meter.Labels[enforcement.LabelRole] != "sidecar" {
		t.Errorf("the meter's labels %v: want %s=sidecar, so that a pause leaves it running", meter.Labels, enforcement.LabelRole)
	}
	if got := meter.Environment; got["BOTTLECAP_BOTTLE"] != "demo-1" || got["BOTTLECAP_AGENT"] != d.Agent {
		t.Errorf("meter environment %v: want the bottle demo-1 and the agent of the labels, %s", got, d.Agent)
	}
	want := fmt.Sprintf("/srv/bb/run:%s:ro", filepath.Dir(img.socket))
	if !slices.Equal(meter.Volumes, []string{want}) {
		t.Errorf("meter volumes %v, want the run/ directory at the image's socket directory: %s", meter.Volumes, want)
	}
	if !slices.Equal(meter.GroupAdd, []string{"4242"}) || img.user == "0" || strings.HasPrefix(img.user, "0:") {
		t.Errorf("meter group_add %v, image user %q: want a non-root meter given the daemon's gid", meter.GroupAdd, img.user)
	}
}

// withProject is a container's labels as Compose sets them.
func withProject(labels map[string]string, project string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[enforcement.LabelProject] = project
	return out
}

// sidecar is what deploy/sidecar/Dockerfile makes of the image.
type sidecar struct {
	port, socket, user string
}

// sidecarImage reads the Dockerfile's instructions: FROM scratch, the
// binary copied in, the meter listening on every address, the socket's
// path and the user.
func sidecarImage(t *testing.T) sidecar {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(readFile(t, filepath.Join(root, "deploy/sidecar/Dockerfile")), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	want := []string{
		"FROM scratch",
		"COPY bottlecap /bottlecap",
		"ENV BOTTLECAP_SOCKET=/run/bottlecap/bottlecap.sock",
		"USER 65532:65532",
		"EXPOSE 8089",
		`ENTRYPOINT ["/bottlecap", "meter", "--listen", "0.0.0.0:8089"]`,
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("Dockerfile instructions:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	return sidecar{port: "8089", socket: "/run/bottlecap/bottlecap.sock", user: "65532:65532"}
}
