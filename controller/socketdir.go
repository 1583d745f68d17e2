package controller

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// socketDirMode is the mode of a socket directory the daemon creates: the
// socket's group may reach the socket, others may not even look.
const socketDirMode = 0o750

// socketDir creates the socket's directory, or checks the existing one.
// A directory the daemon creates is its own, so it gets socketDirMode
// whatever the umask. An existing directory may be shared (/tmp, /run, a
// home): the daemon never changes its mode, and refuses it when someone
// else could replace the socket in it.
func socketDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), socketDirMode); err != nil {
		return fmt.Errorf("create socket directory: %w", err)
	}
	err := os.Mkdir(dir, socketDirMode)
	switch {
	case err == nil:
		if err := os.Chmod(dir, socketDirMode); err != nil {
			return fmt.Errorf("secure socket directory: %w", err)
		}
		return nil
	case errors.Is(err, fs.ErrExist):
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("socket directory: %w", err)
		}
		return checkSocketDir(dir, fi, os.Getuid())
	default:
		return fmt.Errorf("create socket directory: %w", err)
	}
}

// checkSocketDir refuses an existing socket directory that someone other
// than its owner may write to (shared or sticky, like /tmp), or whose owner
// is neither root nor the daemon's uid: either could replace the socket
// with their own and hear every operator and sidecar.
func checkSocketDir(dir string, fi fs.FileInfo, uid int) error {
	if !fi.IsDir() {
		return fmt.Errorf("socket directory %s is not a directory", dir)
	}
	const hint = "bottlecap never changes a directory it did not create; give --socket (or socket: in settings) " +
		"a path in a directory of the daemon's own, e.g. $BOT_BOTTLE_HOME/run/bottlecap.sock, which it creates 0750"
	mode := fi.Mode()
	if mode&fs.ModeSticky != 0 || mode.Perm()&0o002 != 0 {
		return fmt.Errorf("socket directory %s (mode %s) is shared, writable by others, who could replace the socket: %s", dir, mode, hint)
	}
	if mode.Perm()&0o020 != 0 {
		return fmt.Errorf("socket directory %s (mode %s) is writable by others in its group, who could replace the socket: "+
			"if that is not wanted, chmod g-w %s; %s", dir, mode, dir, hint)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("socket directory %s: its owner is unknown", dir)
	}
	if st.Uid != 0 && int(st.Uid) != uid {
		return fmt.Errorf("socket directory %s belongs to uid %d, who could replace the socket: %s", dir, st.Uid, hint)
	}
	return nil
}
