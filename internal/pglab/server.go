// Package pglab runs a real, private Postgres for the fleet's tests and
// benchmarks: Debian's postgresql binaries, a cluster made by initdb in a
// temporary directory (as the postgres user when running as root, since
// initdb and postgres refuse root), listening on a private port of
// 127.0.0.1 and on a unix socket inside that directory, stopped with a
// fast shutdown and removed afterwards. It links no testing, so the bench
// can use it; pgtest puts it behind the tests' skip-or-fail gate.
package pglab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// binGlob is where Debian's postgresql packages put a major version's
// server binaries (initdb and postgres are not on $PATH there).
const binGlob = "/usr/lib/postgresql/*/bin"

// superuser is the cluster's superuser, who connects without a password
// (trust) over 127.0.0.1 and the socket: the server is private to the test.
const superuser = "postgres"

// startTimeout bounds initdb and a start until the server accepts
// connections, on a loaded two-core machine.
const startTimeout = 2 * time.Minute

// stopTimeout bounds a fast shutdown before the server is killed.
const stopTimeout = 30 * time.Second

// ErrNoPostgres is returned by Start when no Postgres binaries are found.
var ErrNoPostgres = errors.New("no Postgres server binaries (apt-get install postgresql)")

// Server is one running Postgres cluster in a directory of its own.
type Server struct {
	bin  string // the directory holding initdb and postgres
	dir  string // the temporary directory: data/, the socket, the log
	port int
	cred *syscall.Credential // whom the server runs as; nil: this process's user

	mu      sync.Mutex
	proc    *exec.Cmd
	exited  chan struct{} // closed when proc has been waited for
	stopped bool
}

// Start makes a new cluster in a temporary directory and starts it. Stop
// stops it and removes the directory; a Start that fails removes what it
// made.
func Start() (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if s.cred, err = serverCredential(); err != nil {
		return nil, err
	}
	if s.dir, err = s.makeDir(); err != nil {
		return nil, err
	}
	if err := s.initdb(); err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	if s.port, err = freePort(); err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	if err := s.start(); err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	return s, nil
}

// findBin is the newest installed major version's bin directory.
func findBin() (string, error) {
	dirs, _ := filepath.Glob(binGlob)
	slices.SortFunc(dirs, func(a, b string) int { return majorOf(a) - majorOf(b) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if isExecutable(filepath.Join(dirs[i], "postgres")) && isExecutable(filepath.Join(dirs[i], "initdb")) {
			return dirs[i], nil
		}
	}
	return "", ErrNoPostgres
}

// majorOf is the major version in /usr/lib/postgresql/<major>/bin.
func majorOf(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return n
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// serverCredential is the postgres user's when running as root (initdb
// refuses root), else nil: an ordinary user runs the server as itself.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(superuser)
	if err != nil {
		return nil, fmt.Errorf("running as root, the server needs the %s user (apt-get install postgresql creates it): %w", superuser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user %s: %w", superuser, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// makeDir creates the temporary directory, owned by the server's user.
func (s *Server) makeDir() (string, error) {
	dir, err := os.MkdirTemp("", "pglab")
	if err != nil {
		return "", fmt.Errorf("pglab: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("pglab: %w", err)
		}
	}
	return dir, nil
}

// command is one of the binaries, run as the server's user in s.dir.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "TZ=UTC", "HOME=" + s.dir}
	// The server dies with the test binary (SIGQUIT: immediate shutdown)
	// if the binary is killed before it could stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT}
	return cmd
}

// initdb makes the cluster: trust authentication for the superuser, no
// fsync while making it (a test's cluster never survives a machine crash).
func (s *Server) initdb() error {
	out, err := s.command("initdb", "-D", s.dataDir(), "-U", superuser, "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pglab: initdb: %w\n%s", err, out)
	}
	return nil
}

// Stopped reports whether the server was stopped (or is between the two
// halves of a Restart).
func (s *Server) Stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.dir, "postgres.log") }

// freePort is a TCP port of 127.0.0.1 free at the time of asking.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pglab: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs postgres on s.port and waits until it accepts connections.
// fsync is off (only a machine crash would need it); every commit is
// still synchronous, so a restarted server keeps what it acknowledged.
func (s *Server) start() error {
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pglab: %w", err)
	}
	defer logf.Close()
	cmd := s.command("postgres", "-D", s.dataDir(), "-k", s.dir, "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pglab: start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.proc, s.exited, s.stopped = cmd, exited, false
	s.mu.Unlock()
	if err := s.waitReady(exited); err != nil {
		s.kill()
		return err
	}
	return nil
}

// waitReady polls until a connection succeeds, the server exits, or
// startTimeout passes.
func (s *Server) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("pglab: postgres exited while starting:\n%s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pglab: postgres not ready within %v: %w\n%s", startTimeout, err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logTail is the end of the server's log, for an error message.
func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Addr is the server's TCP address, host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// DSN is the URL of database db on the server, over TCP.
func (s *Server) DSN(db string) string {
	return DSNAt(s.Addr(), db)
}

// DSNAt is the URL of database db on the server at addr (a proxy in
// front of it, say).
func DSNAt(addr, db string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", superuser, addr, db)
}

// Via is dsn (a URL such as DSN returns) with its host:port replaced by
// addr: the same database reached through a proxy at addr.
func Via(dsn, addr string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	u.Host = addr
	return u.String()
}

// Stop stops the server with a fast shutdown (killing it if that takes
// longer than stopTimeout) and removes its directory. Calling it again
// does nothing.
func (s *Server) Stop() error {
	err := s.shutdown()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("pglab: remove %s: %w", s.dir, rmErr))
	}
	return err
}

// Restart stops the server with a fast shutdown and starts it again on
// the same port with the same data: a Postgres restart as an operator
// does one. Connections open before it are broken.
func (s *Server) Restart() error {
	if err := s.shutdown(); err != nil {
		return err
	}
	return s.start()
}

// shutdown sends SIGINT (Postgres' fast shutdown: open transactions are
// rolled back, committed ones flushed) and waits for the server to exit.
func (s *Server) shutdown() error {
	s.mu.Lock()
	proc, exited, stopped := s.proc, s.exited, s.stopped
	s.stopped = true
	s.mu.Unlock()
	if proc == nil || stopped {
		return nil
	}
	proc.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		return nil
	case <-time.After(stopTimeout):
		s.kill()
		return fmt.Errorf("pglab: postgres did not stop within %v and was killed:\n%s", stopTimeout, s.logTail())
	}
}

// kill ends the server at once and waits for it.
func (s *Server) kill() {
	s.mu.Lock()
	proc, exited := s.proc, s.exited
	s.stopped = true
	s.mu.Unlock()
	if proc == nil {
		return
	}
	proc.Process.Kill()
	<-exited
}

// CreateDatabase creates a database of a fresh name t_<random> and
// returns its name.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	name := "t_" + randHex()
	if err := s.exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pglab: create database: %w", err)
	}
	return name, nil
}

// DropDatabase drops a database, closing the connections still open to it.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pglab: drop database %s: %w", name, err)
	}
	return nil
}

// exec runs one statement as the superuser in the postgres database.
func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Dir is the server's temporary directory (its data, socket and log).
func (s *Server) Dir() string { return s.dir }

// randHex is 8 random bytes in hex, for database names.
func randHex() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
