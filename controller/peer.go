package controller

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"syscall"
)

// Peer is who is at the other end of one socket connection, decided once
// when the connection is accepted (tailscale's safesocket pattern).
type Peer struct {
	PID, UID, GID int
	// Operator peers may do everything; others may only report usage and
	// ask the gate.
	Operator bool
	// Container is the Docker container id the peer process lives in, or "".
	Container string
}

type peerKey struct{}

// peerFrom returns the connection's peer stored by ConnContext.
func peerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// peerCred reads SO_PEERCRED from a unix connection.
func peerCred(c net.Conn) (*syscall.Ucred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("not a unix connection: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Ucred
	var credErr error
	err = raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil {
		return nil, err
	}
	return cred, credErr
}

// isOperator decides whether a uid may act: root, the daemon's own uid, and
// the uids and groups listed in settings `operators:`.
func isOperator(uid, gid int, operators []string) bool {
	if uid == 0 || uid == os.Getuid() {
		return true
	}
	groups := peerGroups(uid, gid)
	for _, op := range operators {
		if n, err := strconv.Atoi(op); err == nil {
			if n == uid {
				return true
			}
			continue
		}
		g, err := user.LookupGroup(op)
		if err != nil {
			continue // an unknown group grants nothing
		}
		if groups[g.Gid] {
			return true
		}
	}
	return false
}

// peerGroups is the set of gids (as strings) a uid belongs to: its primary
// gid from the connection and its supplementary groups from the user
// database.
func peerGroups(uid, gid int) map[string]bool {
	set := map[string]bool{strconv.Itoa(gid): true}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return set // a uid without a passwd entry has only its primary group
	}
	ids, err := u.GroupIds()
	if err != nil {
		return set
	}
	for _, id := range ids {
		set[id] = true
	}
	return set
}

var containerID = regexp.MustCompile(`[0-9a-f]{64}`)

// containerOf returns the Docker container id a process lives in, read from
// its cgroup path (…/docker-<id>.scope or …/docker/<id>), or "".
func containerOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "" // the process is gone or hidden: treat as a host process
	}
	return containerIDIn(b)
}

func containerIDIn(cgroup []byte) string {
	return string(containerID.Find(cgroup))
}
