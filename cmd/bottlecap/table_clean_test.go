package main

import (
	"bytes"
	"testing"
)

// TestTableDropsControlCharacters: a peer's model or an operator's reason
// printed in a CLI table cannot carry escape sequences to the terminal.
func TestTableDropsControlCharacters(t *testing.T) {
	var b bytes.Buffer
	tb := newTable(&b, "MODEL", "REASON")
	tb.row("\x1b[41mgpt-5", "budget\x07 exhausted\r")
	if err := tb.flush(); err != nil {
		t.Fatal(err)
	}
	want := "MODEL      REASON\n[41mgpt-5  budget exhausted\n"
	if got := b.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
