// Package deploy_test checks what an operator installs: `make install`'s
// file tree, the systemd, sysusers and tmpfiles files, the package's
// post-install step, and the sidecar image and compose example on the
// real engine.
package deploy_test

import (
	"bufio"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// root is the repository, where the Makefile is.
const root = ".."

// installed is one path `make install` must create, with its mode.
type installed struct {
	path string
	mode fs.FileMode
}

// TestMakeInstallDestdir runs `make install DESTDIR=…` into a temporary
// tree and checks every path and mode it creates, and nothing else: the
// real system is not touched (no user, no chown) when DESTDIR is set.
func TestMakeInstallDestdir(t *testing.T) {
	for _, prefix := range []string{"/usr/local", "/usr"} {
		t.Run(prefix, func(t *testing.T) {
			dest := t.TempDir()
			out, err := exec.Command("make", "-C", root, "--no-print-directory", "install", "DESTDIR="+dest, "PREFIX="+prefix).CombinedOutput()
			if err != nil {
				t.Fatalf("make install: %v\n%s", err, out)
			}
			p := strings.TrimPrefix(prefix, "/")
			want := []installed{
				{p + "/bin/bottlecap", 0o755},
				{p + "/lib/systemd/system/bottlecap.service", 0o644},
				{p + "/lib/sysusers.d/bottlecap.conf", 0o644},
				{p + "/lib/tmpfiles.d/bottlecap.conf", 0o644},
				{"var/lib/bot-bottle", fs.ModeDir | 0o750},
				{"var/lib/bot-bottle/run", fs.ModeDir | 0o750},
			}
			want = append(want, manPages(t, filepath.Join(dest, p, "bin/bottlecap"), p+"/share/man/man1")...)
			checkTree(t, dest, want)
			unit := readFile(t, filepath.Join(dest, p, "lib/systemd/system/bottlecap.service"))
			if got := unitValue(unit, "ExecStart"); got != prefix+"/bin/bottlecap serve" {
				t.Errorf("the installed unit's ExecStart: got %q, want the installed binary %s/bin/bottlecap serve", got, prefix)
			}
			v, err := exec.Command(filepath.Join(dest, p, "bin/bottlecap"), "version").Output()
			if err != nil || !strings.HasPrefix(string(v), "bottlecap v") || !strings.Contains(string(v), headCommit(t)) {
				t.Errorf("installed bottlecap version: got %q (%v), want the version and the commit %q make linked in", v, err, headCommit(t))
			}
		})
	}
}

// manPages are the man pages make install must put in dir (0644): one per
// command, as the installed binary generates them, bottlecap.1 among them.
func manPages(t *testing.T, bin, dir string) []installed {
	t.Helper()
	gen := t.TempDir()
	if out, err := exec.Command(bin, "gen-docs", "--man", gen).CombinedOutput(); err != nil {
		t.Fatalf("bottlecap gen-docs: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(gen)
	if err != nil {
		t.Fatal(err)
	}
	var out []installed
	for _, e := range entries {
		out = append(out, installed{dir + "/" + e.Name(), 0o644})
	}
	if !slices.ContainsFunc(out, func(i installed) bool { return i.path == dir+"/bottlecap.1" }) || len(out) < 10 {
		t.Fatalf("gen-docs made %d man pages, want bottlecap.1 and one per command", len(out))
	}
	return out
}

// headCommit is "(commit <HEAD>" in a git checkout, else "(": make links
// in the commit when git can name it.
func headCommit(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		return "("
	}
	return "(commit " + strings.TrimSpace(string(out))
}

// checkTree fails for each wanted path that is missing or has another
// mode, and for each file or directory below dest that is not wanted
// (directories leading to a wanted path excepted).
func checkTree(t *testing.T, dest string, want []installed) {
	t.Helper()
	parents := map[string]bool{}
	for _, w := range want {
		for d := filepath.Dir(w.path); d != "."; d = filepath.Dir(d) {
			parents[d] = true
		}
		fi, err := os.Lstat(filepath.Join(dest, w.path))
		if err != nil {
			t.Errorf("make install did not create %s: %v", w.path, err)
			continue
		}
		if fi.Mode() != w.mode {
			t.Errorf("%s: mode %s, want %s", w.path, fi.Mode(), w.mode)
		}
	}
	filepath.WalkDir(dest, func(path string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dest, path)
		if err != nil || rel == "." || parents[rel] {
			return err
		}
		if !slices.ContainsFunc(want, func(w installed) bool { return w.path == rel }) {
			t.Errorf("make install created %s, which nothing expects", rel)
		}
		return nil
	})
}

// TestSystemdFilesAgree holds the unit, the sysusers file and the tmpfiles
// file to one user, group and home.
func TestSystemdFilesAgree(t *testing.T) {
	unit := readFile(t, filepath.Join(root, "deploy/systemd/bottlecap.service"))
	for key, want := range map[string]string{
		"User": "botbottle", "Group": "botbottle", "SupplementaryGroups": "docker",
		"Environment": "BOT_BOTTLE_HOME=/var/lib/bot-bottle", "StateDirectory": "bot-bottle",
		"StateDirectoryMode": "0750", "ExecStart": "/usr/bin/bottlecap serve",
	} {
		if got := unitValue(unit, key); got != want {
			t.Errorf("bottlecap.service %s=%q, want %q", key, got, want)
		}
	}
	sysusers := fields(t, "deploy/systemd/bottlecap-sysusers.conf")
	if want := [][]string{{"u", "botbottle", "-", `"bottlecap`, `daemon"`, "/var/lib/bot-bottle"}}; !slices.EqualFunc(sysusers, want, slices.Equal) {
		t.Errorf("sysusers: got %q, want %q", sysusers, want)
	}
	tmpfiles := fields(t, "deploy/systemd/bottlecap-tmpfiles.conf")
	want := [][]string{
		{"d", "/var/lib/bot-bottle", "0750", "botbottle", "botbottle", "-"},
		{"d", "/var/lib/bot-bottle/run", "0750", "botbottle", "botbottle", "-"},
	}
	if !slices.EqualFunc(tmpfiles, want, slices.Equal) {
		t.Errorf("tmpfiles: got %q, want %q", tmpfiles, want)
	}
}

// TestSysusersAndTmpfilesCreate applies the sysusers and tmpfiles files
// with systemd's own tools to an empty root: they create the user, its
// group and the directories 0750 owned by them, and a second run changes
// nothing.
func TestSysusersAndTmpfilesCreate(t *testing.T) {
	for _, tool := range []string{"systemd-sysusers", "systemd-tmpfiles"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian: systemd)", tool)
		}
	}
	sysroot := t.TempDir()
	if err := os.Mkdir(filepath.Join(sysroot, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	sysusers, _ := filepath.Abs(filepath.Join(root, "deploy/systemd/bottlecap-sysusers.conf"))
	tmpfiles, _ := filepath.Abs(filepath.Join(root, "deploy/systemd/bottlecap-tmpfiles.conf"))
	var first string
	for run := range 2 {
		runTool(t, "systemd-sysusers", "--root="+sysroot, sysusers)
		runTool(t, "systemd-tmpfiles", "--root="+sysroot, "--create", tmpfiles)
		passwd := readFile(t, filepath.Join(sysroot, "etc/passwd"))
		if run == 0 {
			first = passwd
		} else if passwd != first {
			t.Errorf("a second run changed /etc/passwd:\n%s\nwas:\n%s", passwd, first)
		}
	}
	user := entry(t, first, "botbottle") // name:x:uid:gid:gecos:home:shell
	if user == nil || user[5] != "/var/lib/bot-bottle" || user[6] != "/usr/sbin/nologin" {
		t.Fatalf("passwd entry of botbottle: got %q, want home /var/lib/bot-bottle and shell /usr/sbin/nologin", user)
	}
	group := entry(t, readFile(t, filepath.Join(sysroot, "etc/group")), "botbottle")
	if group == nil || group[2] != user[3] {
		t.Fatalf("group botbottle: got %q, want the user's primary group (gid %s)", group, user[3])
	}
	for _, dir := range []string{"var/lib/bot-bottle", "var/lib/bot-bottle/run"} {
		out, err := exec.Command("stat", "-c", "%a %u %g", filepath.Join(sysroot, dir)).Output()
		if want := "750 " + user[2] + " " + user[3]; err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%s: got mode, uid, gid %q (%v), want %q", dir, out, err, want)
		}
	}
}

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// entry is the colon-separated fields of name's line in a passwd or
// group file, or nil.
func entry(t *testing.T, file, name string) []string {
	t.Helper()
	for line := range strings.Lines(file) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if f[0] == name {
			return f
		}
	}
	return nil
}

// unitValue is the value of the unit file's first key=value line for key.
func unitValue(unit, key string) string {
	for line := range strings.Lines(unit) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			return v
		}
	}
	return ""
}

// fields is a config file's non-comment lines split into fields.
func fields(t *testing.T, name string) [][]string {
	t.Helper()
	var out [][]string
	sc := bufio.NewScanner(strings.NewReader(readFile(t, filepath.Join(root, name))))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, strings.Fields(line))
		}
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPostinstall runs the package's post-install step against stand-ins
// for the system's tools, which record how they were called: with
// systemd's tools it applies the sysusers and tmpfiles files; without them
// it creates the user and group with the shadow tools unless they exist,
// and the directories 0750.
func TestPostinstall(t *testing.T) {
	const (
		sysusers = "systemd-sysusers /usr/lib/sysusers.d/bottlecap.conf"
		tmpfiles = "systemd-tmpfiles --create /usr/lib/tmpfiles.d/bottlecap.conf"
		groupadd = "groupadd --system botbottle"
		useradd  = "useradd --system --gid botbottle --home-dir /var/lib/bot-bottle --no-create-home --shell /usr/sbin/nologin --comment bottlecap daemon botbottle"
		dirs     = "install -d -m 0750 -o botbottle -g botbottle /var/lib/bot-bottle /var/lib/bot-bottle/run"
	)
	tests := []struct {
		name     string
		systemd  bool
		existing []string // getent answers for these "passwd NAME" / "group NAME"
		want     []string
	}{
		{"systemd", true, nil, []string{sysusers, tmpfiles}},
		{"systemd, user exists", true, []string{"passwd botbottle", "group botbottle"}, []string{sysusers, tmpfiles}},
		{"no systemd, no user", false, nil, []string{"getent passwd botbottle", "getent group botbottle", groupadd, useradd, dirs}},
		{"no systemd, group only", false, []string{"group botbottle"}, []string{"getent passwd botbottle", "getent group botbottle", useradd, dirs}},
		{"no systemd, user exists", false, []string{"passwd botbottle", "group botbottle"}, []string{"getent passwd botbottle", dirs}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin, log := t.TempDir(), filepath.Join(t.TempDir(), "calls")
			tools := []string{"getent", "groupadd", "useradd", "install", "systemctl"}
			if tt.systemd {
				tools = append(tools, "systemd-sysusers", "systemd-tmpfiles")
			}
			for _, tool := range tools {
				stub := "#!/bin/sh\necho \"" + tool + " $*\" >> " + log + "\n"
				if tool == "getent" {
					stub += "case \"$*\" in \"" + strings.Join(append(tt.existing, "__none__"), "\"|\"") + "\") exit 0;; esac\nexit 2\n"
				}
				if err := os.WriteFile(filepath.Join(bin, tool), []byte(stub), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("/bin/sh", filepath.Join(root, "deploy/package/postinstall.sh"), "configure")
			cmd.Env = []string{"PATH=" + bin}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("postinstall: %v\n%s", err, out)
			}
			want := tt.want
			if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
				want = append(want, "systemctl daemon-reload") // this machine runs systemd
			}
			got, _ := os.ReadFile(log)
			if calls := strings.Split(strings.TrimSpace(string(got)), "\n"); !slices.Equal(calls, want) {
				t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
