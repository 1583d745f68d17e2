package notify

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/bot-bottle/bottlecap/budget"
)

// outputKept is how much of a failed program's output its error keeps.
const outputKept = 512

// run delivers a notice to a program: the notice as JSON on its standard
// input, its kind in $BOTTLECAP_NOTICE_KIND; exit status 0 is taken. The
// program runs in a process group of its own, all of which the timeout
// kills (a shell script's children too).
func run(ctx context.Context, conf budget.NotifySink, d budget.Delivery) error {
	cmd := exec.CommandContext(ctx, conf.Exec[0], conf.Exec[1:]...)
	cmd.Stdin = bytes.NewReader(d.Body)
	out := &headBuffer{max: outputKept}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "BOTTLECAP_NOTICE_KIND="+string(d.Kind))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // a grandchild holding the output open
	if err := cmd.Run(); err != nil {
		if said := strings.TrimSpace(out.String()); said != "" {
			return fmt.Errorf("%s: %w: %s", conf.Exec[0], err, said)
		}
		return fmt.Errorf("%s: %w", conf.Exec[0], err)
	}
	return nil
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	bytes.Buffer
	max int
}

func (b *headBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
