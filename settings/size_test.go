package settings_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/settings"
)

// bottlesFile is a settings file with n bottle defaults, one key each
// (the shape that was quadratic: many keys in one block mapping); every
// hundredth has a budget of its own.
func bottlesFile(n int) []byte {
	var b strings.Builder
	b.WriteString("shutdown: freeze\nbottles:\n")
	for i := range n {
		if i%100 == 99 {
			fmt.Fprintf(&b, "  b%d:\n    budget: {claude: %dk}\n", i, i+1)
		} else {
			fmt.Fprintf(&b, "  b%d: {}\n", i)
		}
	}
	return []byte(b.String())
}

// TestSettingsOverTheCap: a file over MaxSettingsBytes is refused with a
// settings.Error naming the file and the limit, before any of it is parsed
// (the tail here is not even YAML), by Load and Parse both.
func TestSettingsOverTheCap(t *testing.T) {
	big := append([]byte("shutdown: kill\n"), strings.Repeat("#", settings.MaxBytes)...)
	big = append(big, "\n\t: not yaml ["...)
	path := filepath.Join(t.TempDir(), "settings.yml")
	if err := os.WriteFile(path, big, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, parse := range map[string]func() (*budget.Settings, error){
		"Load":  func() (*budget.Settings, error) { return settings.Load(path) },
		"Parse": func() (*budget.Settings, error) { return settings.Parse(path, big) },
	} {
		_, err := parse()
		var se *settings.Error
		if !errors.As(err, &se) || !errors.Is(err, budget.ErrInvalid) || se.File != path || !strings.Contains(se.Msg, "1 MiB") {
			t.Errorf("%s of %d bytes: %v, want a settings.Error naming the file and the 1 MiB limit", name, len(big), err)
		}
	}
	justUnder := append([]byte("shutdown: kill\n"), strings.Repeat("#", settings.MaxBytes-16)...)
	if s, err := settings.Parse("s.yml", justUnder); err != nil || s.Shutdown != budget.Kill {
		t.Errorf("a file just under the cap: %v, want it parsed", err)
	}
}

// TestLargeSettingsParse parses 40,000 bottle defaults (about 1 MiB: the
// issue's 15 s file) and checks every one. The parse is linear in the
// file since the YAML library changed; under the quadratic one this test
// ran past the package's timeout.
func TestLargeSettingsParse(t *testing.T) {
	const n = 40_000
	data := bottlesFile(n)
	if len(data) > settings.MaxBytes {
		t.Fatalf("test file is %d bytes, over the cap", len(data))
	}
	s, err := settings.Parse("s.yml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Bottles) != n || s.Bottles["b39999"].Budget["claude"].String() != "40000000" {
		t.Errorf("got %d bottles, b39999 = %+v; want %d, the last with 40M", len(s.Bottles), s.Bottles["b39999"], n)
	}
}

// TestSettingsParseGrowsLinearly measures the bytes allocated to parse n
// and 4n bottle defaults: a linear parse allocates about four times as
// much; the old quadratic one (goccy/go-yaml copied the list of keys at
// each of n levels of recursion) allocated over ten times as much.
// Counting bytes, unlike timing, does not depend on the machine.
func TestSettingsParseGrowsLinearly(t *testing.T) {
	allocated := func(n int) uint64 {
		data := bottlesFile(n)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := settings.Parse("s.yml", data); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := allocated(4_000), allocated(16_000)
	if ratio := float64(large) / float64(small); ratio > 6 {
		t.Errorf("allocated %.1f× the bytes for 4× the entries (%d → %d), want about 4×", ratio, small, large)
	}
}

func TestEmptySecondDocumentIsNothing(t *testing.T) {
	s, err := settings.Parse("s.yml", []byte("shutdown: kill\n---\n"))
	if err != nil || s.Shutdown != budget.Kill {
		t.Errorf("got %v, %v; want shutdown kill", s, err)
	}
}
