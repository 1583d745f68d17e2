// Command bench measures the figures of SPEC section 10 side by side in one
// run and prints each as `bench: <name> <value> <unit>` (`make bench`).
//
// Each area registers its benchmarks from its own file with register, so
// adding one never touches another's code; -run selects them by name.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"
)

// bench is one registered benchmark: it reports any number of figures.
type bench struct {
	name string
	fn   func(ctx context.Context, r *runner) error
}

var benches []bench

// register adds a benchmark; call it from an init function of the area's
// file. Benchmarks run in registration order (file name order).
func register(name string, fn func(ctx context.Context, r *runner) error) {
	benches = append(benches, bench{name, fn})
}

// runner is what a benchmark gets: a scratch directory that is removed
// afterwards and the report and log helpers.
type runner struct {
	dir string
	out io.Writer
	log io.Writer
}

// report prints one figure in the format make bench promises.
func (r *runner) report(name string, value float64, unit string) {
	fmt.Fprintf(r.out, "bench: %s %s %s\n", name, strconv.FormatFloat(value, 'f', -1, 64), unit)
}

// logf prints progress that is not a figure.
func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "# "+format+"\n", args...)
}

// tempDir returns a fresh directory for one benchmark's files, under the
// run's scratch directory, which is removed at exit.
func (r *runner) tempDir(name string) (string, error) {
	return os.MkdirTemp(r.dir, name+"-")
}

func main() {
	if kind := os.Getenv(proxyChildEnv); kind != "" {
		if err := runProxyChild(kind); err != nil {
			fmt.Fprintln(os.Stderr, "bench proxy:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// settle gives each benchmark a quiet machine: the files earlier ones
// wrote (a million-report ledger, say) are flushed to disk now rather than
// by the kernel in the middle of the next measurement, and this process's
// heap is collected and returned.
func settle() {
	syscall.Sync()
	runtime.GC()
	debug.FreeOSMemory()
}

func run() error {
	pattern := flag.String("run", "", "run only the benchmarks whose name matches this regexp")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	re, err := regexp.Compile(*pattern)
	if err != nil {
		return fmt.Errorf("-run: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	dir, err := os.MkdirTemp("", "bottlecap-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r := &runner{dir: dir, out: os.Stdout, log: os.Stdout}

	var failed []string
	for _, b := range benches {
		if !re.MatchString(b.name) {
			continue
		}
		settle()
		start := time.Now()
		r.logf("%s: running in %s", b.name, filepath.Join(dir, b.name))
		if err := b.fn(ctx, r); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", b.name, err)
			failed = append(failed, b.name)
			continue
		}
		r.logf("%s: done in %s", b.name, time.Since(start).Round(time.Millisecond))
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed: %v", failed)
	}
	return nil
}
