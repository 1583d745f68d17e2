package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Version and Commit may be set at link time, for release builds and for
// builds where the go command records no VCS information (a container
// build, a checkout without .git, GOFLAGS=-buildvcs=false):
//
//	go build -ldflags "-X main.Version=v1.2.3 -X main.Commit=$(git rev-parse HEAD)"
//
// Left empty, they are read from what the go command recorded in the
// binary: the module version (`go install …@v1.2.3`, or the pseudo-version
// it derives from git in a clone) and the VCS commit.
var Version, Commit string

// buildInfo is what `bottlecap version` prints.
type buildInfo struct {
	Version  string // v1.2.3, a pseudo-version, or "devel"
	Commit   string // the VCS revision; empty when unknown
	Modified bool   // the checkout had uncommitted changes
	Go       string // the toolchain, go1.26.8
}

// readBuildInfo reads the binary's build information; tests replace it.
var readBuildInfo = debug.ReadBuildInfo

// currentBuild is Version and Commit, completed from the build information.
func currentBuild() buildInfo {
	b := buildInfo{Version: Version, Commit: Commit, Go: runtime.Version()}
	bi, ok := readBuildInfo()
	if ok && b.Version == "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	if !ok {
		return b
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if b.Commit == "" {
				b.Commit = s.Value
			}
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is one line: "v1.2.3 (commit 0123abc…, modified; go1.26.8 linux/amd64)".
func (b buildInfo) String() string {
	var parts []string
	if b.Commit != "" {
		c := "commit " + b.Commit
		if b.Modified {
			c += ", modified"
		}
		parts = append(parts, c)
	}
	parts = append(parts, b.Go+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("%s (%s)", b.Version, strings.Join(parts, "; "))
}

// versionCommand is `bottlecap version [--json]`; `bottlecap --version`
// prints the same line.
func (m *Main) versionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit and the Go toolchain",
		Args:  positional(0, 0),
		RunE: func(*cobra.Command, []string) error {
			return m.printVersion(asJSON)
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// versionJSON is `bottlecap version --json`.
type versionJSON struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func (m *Main) printVersion(asJSON bool) error {
	b := currentBuild()
	if asJSON {
		return writeJSON(m.Stdout, versionJSON{Version: b.Version, Commit: b.Commit, Modified: b.Modified, Go: b.Go,
			Platform: runtime.GOOS + "/" + runtime.GOARCH})
	}
	_, err := fmt.Fprintf(m.Stdout, "bottlecap %s\n", b)
	return err
}
