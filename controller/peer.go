package controller

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

// Peer is who is at the other end of one socket connection, decided once
// when the connection is accepted (tailscale's safesocket pattern). Its zero
// value is the least trusted peer: no operator, no host, no container.
type Peer struct {
	PID, UID, GID int
	// Operator peers may do everything; others may only report usage and
	// ask the gate.
	Operator bool
	// Host is set when the peer process is established to live on the host:
	// in the daemon's pid namespace and in no container.
	Host bool
	// Container is the Docker container id the peer process lives in, or "".
	Container string
	// Unknown says why the peer's origin could not be established; such a
	// peer is never an operator and may report for no bottle.
	Unknown string
}

type peerKey struct{}

// peerFrom returns the connection's peer stored by ConnContext.
func peerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// peerOf reads a unix connection's SO_PEERCRED and establishes where the
// peer process lives (origin.go). Operator is left for the caller.
func peerOf(c net.Conn) (Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, fmt.Errorf("not a unix connection: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var p Peer
	var credErr error
	err = raw.Control(func(fd uintptr) {
		var cred *unix.Ucred
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if credErr != nil {
			return
		}
		p = Peer{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}
		o := peerOrigin(int(fd), p.PID)
		p.Host, p.Container, p.Unknown = o.host, o.container, o.unknown
	})
	if err != nil {
		return Peer{}, err
	}
	return p, credErr
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
