package budget_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

func TestParseTokens(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"5000000", 5_000_000},
		{"5_000_000", 5_000_000},
		{"5M", 5_000_000},
		{"5m", 5_000_000},
		{"200k", 200_000},
		{"200K", 200_000},
		{"1.5M", 1_500_000},
		{"1_000k", 1_000_000},
		{"2G", 2_000_000_000},
		{"2g", 2_000_000_000},
		{"0.5k", 500},
		{"1.000001M", 1_000_001},
		{"1.50M", 1_500_000},
		{"1.0", 1},
		{"007", 7},
		{" 5M ", 5_000_000},
		{"9223372036854775807", math.MaxInt64},
		{"9_223_372_036.854775807G", math.MaxInt64},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := budget.ParseTokens(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("ParseTokens(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseTokensRejects(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"", "empty token amount"},
		{"   ", "empty token amount"},
		{"-5", `"-5" is negative`},
		{"-1.5M", `"-1.5M" is negative`},
		{"1.5", `"1.5" is not a whole number of tokens`},
		{"1.0000005M", `"1.0000005M" is not a whole number of tokens`},
		{"0.0001k", `"0.0001k" is not a whole number of tokens`},
		{"9223372036854775808", `"9223372036854775808" is too large`},
		{"10G0", `"10G0" is not a token amount`},
		{"9999999999G", `"9999999999G" is too large`},
		{"5Q", `"5Q" is not a token amount`},
		{"M", `"M" is not a token amount`},
		{"5MM", `"5MM" is not a token amount`},
		{"5 M", `"5 M" is not a token amount`},
		{".5M", `".5M" is not a token amount`},
		{"5.M", `"5.M" is not a token amount`},
		{"_5", `"_5" is not a token amount`},
		{"5_", `"5_" is not a token amount`},
		{"5__000", `"5__000" is not a token amount`},
		{"+5", `"+5" is not a token amount`},
		{"0x10", `"0x10" is not a token amount`},
		{"1e6", `"1e6" is not a token amount`},
		{"5Mi", `"5Mi" is not a token amount`},
		{"1.2.3M", `"1.2.3M" is not a token amount`},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := budget.ParseTokens(tt.in)
			if err == nil {
				t.Fatalf("ParseTokens(%q) = %d, nil; want error %q", tt.in, got, tt.want)
			}
			if !errors.Is(err, budget.ErrInvalid) {
				t.Errorf("ParseTokens(%q) error %v does not wrap ErrInvalid", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseTokens(%q) error = %q; want it to contain %q", tt.in, err, tt.want)
			}
		})
	}
}
