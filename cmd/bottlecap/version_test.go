package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// fakeBuild makes the binary's build information and link-time variables
// those given, for the rest of the test.
func fakeBuild(t *testing.T, version, commit string, bi *debug.BuildInfo) {
	t.Helper()
	oldRead, oldVersion, oldCommit := readBuildInfo, Version, Commit
	t.Cleanup(func() { readBuildInfo, Version, Commit = oldRead, oldVersion, oldCommit })
	Version, Commit = version, commit
	readBuildInfo = func() (*debug.BuildInfo, bool) { return bi, bi != nil }
}

func vcs(rev, modified string) []debug.BuildSetting {
	return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
}

func TestVersion(t *testing.T) {
	const rev = "7fccc6523dea752cffd713b024bdf7d6abf97e65"
	platform := runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name            string
		version, commit string // link-time
		bi              *debug.BuildInfo
		want            string
	}{
		{"go install @version (no VCS in a module zip)", "", "",
			&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}},
			"bottlecap v1.2.3 (" + platform + ")\n"},
		{"go build in a clean clone", "", "",
			&debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261207200316-7fccc6523dea"}, Settings: vcs(rev, "false")},
			"bottlecap v0.0.0-20261207200316-7fccc6523dea (commit " + rev + "; " + platform + ")\n"},
		{"go build with uncommitted changes", "", "",
			&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")},
			"bottlecap devel (commit " + rev + ", modified; " + platform + ")\n"},
		{"release build with -ldflags -X", "v1.4.0", rev,
			&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			"bottlecap v1.4.0 (commit " + rev + "; " + platform + ")\n"},
		{"-X wins over the recorded VCS commit", "v1.4.0", "0123456789abcdef",
			&debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-x"}, Settings: vcs(rev, "false")},
			"bottlecap v1.4.0 (commit 0123456789abcdef; " + platform + ")\n"},
		{"no build information", "", "", nil, "bottlecap devel (" + platform + ")\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fakeBuild(t, tt.version, tt.commit, tt.bi)
			for _, args := range [][]string{{"version"}, {"--version"}} {
				r := runCLI(t, nil, args...)
				wantCode(t, r, 0)
				if r.stdout != tt.want || r.stderr != "" {
					t.Errorf("%v: got stdout %q stderr %q, want %q", args, r.stdout, r.stderr, tt.want)
				}
			}
		})
	}
}

func TestVersionRefusesArguments(t *testing.T) {
	for _, args := range [][]string{{"version", "extra"}, {"--version", "extra"}} {
		if r := runCLI(t, nil, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (stdout %q, stderr %q)", args, r.code, r.stdout, r.stderr)
		}
	}
}
