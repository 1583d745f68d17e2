package settings

import (
	"fmt"
	"strings"

	"github.com/bot-bottle/bottlecap/budget"
)

// Error is a settings.yml problem pinned to its place in the file, so
// an operator (or `bottlecap settings check`) can go straight to the line.
// It wraps budget.ErrInvalid. Error() renders
//
//	settings.yml:4:10: budget.claude: "5Q" is not a token amount (…)
//	   4 |   claude: 5Q
//	     |           ^
type Error struct {
	File   string // the file name given to Parse
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based
	Key    string // dotted key path such as "bottles.dev.shutdown"; "" for syntax errors
	Msg    string // what is wrong, without the position
	source string // the offending line of the file, shown under the message
}

// Error gives file:line:column, the key, the message, and the source line
// with a caret under the column.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		num := fmt.Sprintf("%4d", e.Line)
		fmt.Fprintf(&b, "\n%s | %s\n%s | %s^", num, e.source, strings.Repeat(" ", len(num)), caretPad(e.source, e.Column))
	}
	return b.String()
}

// Unwrap makes errors.Is(err, budget.ErrInvalid) hold for every settings error.
func (e *Error) Unwrap() error { return budget.ErrInvalid }

// caretPad is the whitespace that puts a caret under column col of line,
// keeping the line's tabs so the caret stays aligned.
func caretPad(line string, col int) string {
	var b strings.Builder
	for i, r := range []rune(line) {
		if i >= col-1 {
			break
		}
		if r == '\t' {
			b.WriteRune('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	for n := len([]rune(line)); n < col-1; n++ {
		b.WriteByte(' ')
	}
	return b.String()
}
