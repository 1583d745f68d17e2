package controller

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"

	"golang.org/x/sys/unix"
)

// origin is where a peer process lives: on the host, in a Docker
// container, or unknown. SO_PEERCRED only gives a pid, and a pid is a name
// that can outlive its process: the connecting process may exit, be reaped
// and its number be reused before the daemon reads /proc. So the origin is
// read through the kernel's pidfd for the peer (SO_PEERPIDFD, Linux 6.5),
// which names that one process for ever, and the /proc reads count only if
// that process is still alive after them: then the pid was still its.
type origin struct {
	// host is set when the peer is established to live in the daemon's own
	// pid namespace and in no container.
	host bool
	// container is the Docker container id the peer lives in, or "".
	container string
	// unknown says why neither could be established ("" when one was).
	unknown string
}

// procFacts are what the daemon reads about a peer in /proc.
type procFacts struct {
	// pidLevels is how many pid namespaces, from the daemon's down to the
	// process's own, the process has a pid in (the fields of NSpid in
	// /proc/<pid>/status): 1 means the daemon's own pid namespace.
	pidLevels int
	// cgroup is /proc/<pid>/cgroup as the daemon sees it (paths relative
	// to the daemon's cgroup namespace, whatever the peer's own is).
	cgroup []byte
}

// peerOrigin establishes where the process at the other end of the unix
// socket fd lives; pid is its SO_PEERCRED pid. It never guesses: whatever
// it cannot establish is an unknown origin with the reason.
func peerOrigin(fd, pid int) origin {
	if pid <= 0 {
		return unknownOrigin("the peer process has no pid in the daemon's pid namespace")
	}
	pidfd, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err != nil {
		return unknownOrigin(fmt.Sprintf("the kernel gives no pidfd for the peer (SO_PEERPIDFD needs Linux 6.5 or later): %v", err))
	}
	defer unix.Close(pidfd)
	facts, err := readProcFacts(pid)
	if err != nil {
		if exited(pidfd) {
			return unknownOrigin("the peer process exited before its origin could be established")
		}
		return unknownOrigin(fmt.Sprintf("read the peer process's /proc entry: %v", err))
	}
	// The facts were read by pid. They are the peer's only if the peer
	// still held that pid when they were read; alive now means it did.
	if exited(pidfd) {
		return unknownOrigin("the peer process exited before its origin could be established")
	}
	return classify(facts)
}

func unknownOrigin(why string) origin { return origin{unknown: why} }

// exited reports whether the process behind pidfd is gone. Signal 0 only
// checks: EPERM (a daemon not allowed to signal the peer) still means the
// process exists. Anything but a clear answer counts as gone.
func exited(pidfd int) bool {
	err := unix.PidfdSendSignal(pidfd, 0, nil, 0)
	return err != nil && !errors.Is(err, unix.EPERM)
}

// classify decides the origin from what /proc says. A container is named
// by its cgroup whatever its pid namespace (--pid=host containers too).
// "Host" is established positively: the process shares the daemon's pid
// namespace and no container names it. A process in another pid namespace
// that no container names (unshare, a sandbox, another runtime) is of
// unknown origin, so it is neither an operator nor trusted to report.
func classify(f procFacts) origin {
	if id := containerIDIn(f.cgroup); id != "" {
		return origin{container: id}
	}
	if f.pidLevels != 1 {
		return unknownOrigin(fmt.Sprintf("the peer process lives in another pid namespace (%d levels deep) that names no Docker container", f.pidLevels-1))
	}
	return origin{host: true}
}

// readProcFacts reads a process's pid namespace depth and cgroup. Both
// files are readable by any uid (unless /proc is mounted with hidepid, when
// a daemon that is not root cannot establish other users' origins).
func readProcFacts(pid int) (procFacts, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procFacts{}, err
	}
	levels, err := nsPidLevels(status)
	if err != nil {
		return procFacts{}, err
	}
	cgroup, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return procFacts{}, err
	}
	return procFacts{pidLevels: levels, cgroup: cgroup}, nil
}

// nsPidLevels counts the pids on the NSpid line of /proc/<pid>/status.
func nsPidLevels(status []byte) (int, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("NSpid:"))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest)
		for _, f := range fields {
			if _, err := strconv.Atoi(string(f)); err != nil {
				return 0, fmt.Errorf("NSpid line %q: not a pid", bytes.TrimSpace(line))
			}
		}
		if len(fields) == 0 {
			return 0, errors.New("NSpid line is empty")
		}
		return len(fields), nil
	}
	return 0, errors.New("no NSpid line in /proc/<pid>/status")
}

var containerID = regexp.MustCompile(`[0-9a-f]{64}`)

// containerIDIn finds a Docker container id in a cgroup file's paths
// (…/docker-<id>.scope with the systemd driver, …/docker/<id> with
// cgroupfs).
func containerIDIn(cgroup []byte) string {
	return string(containerID.Find(cgroup))
}

// CheckPeerPidfd reports whether this kernel can establish peers' origins
// (SO_PEERPIDFD, Linux 6.5). Without it every peer is of unknown origin:
// no one is an operator and no report is accepted, so the daemon says so
// at start.
func CheckPeerPidfd() error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	pidfd, err := unix.GetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err != nil {
		return fmt.Errorf("SO_PEERPIDFD (Linux 6.5 or later): %w", err)
	}
	unix.Close(pidfd)
	return nil
}
