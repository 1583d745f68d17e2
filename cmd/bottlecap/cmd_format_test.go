package main

import (
	"testing"

	"github.com/bot-bottle/bottlecap/budget"
)

func TestFormatTokens(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0"}, {999, "999"}, {1000, "1k"}, {1500, "1.5k"}, {12345, "12.3k"},
		{412000, "412k"}, {999499, "999k"}, {999999, "1M"}, {1000000, "1M"},
		{1500000, "1.5M"}, {1234567, "1.23M"}, {5000000, "5M"}, {12345678, "12.3M"},
		{2000000000, "2G"}, {1234000000000, "1234G"}, {-1500, "-1.5k"},
	}
	for _, tt := range tests {
		if got := formatTokens(tt.n); got != tt.want {
			t.Errorf("formatTokens(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestExactTokens(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{1000000, "1M"}, {1500000, "1.5M"}, {200000, "200k"}, {1234567, "1234567"}, {656, "656"},
	}
	for _, tt := range tests {
		if got := exactTokens(tt.n); got != tt.want {
			t.Errorf("exactTokens(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestParseScope(t *testing.T) {
	tests := []struct {
		in   string
		want budget.Scope
		ok   bool
	}{
		{"global", budget.Scope{Kind: "global", ID: "-"}, true},
		{"global/-", budget.Scope{Kind: "global", ID: "-"}, true},
		{"bottle/dev-1", budget.Scope{Kind: "bottle", ID: "dev-1"}, true},
		{"agent/dev-1/reviewer", budget.Scope{Kind: "agent", ID: "dev-1/reviewer"}, true},
		{"global/x", budget.Scope{}, false},
		{"bottle", budget.Scope{}, false},
		{"bottle/a/b", budget.Scope{}, false},
		{"agent/dev-1", budget.Scope{}, false},
		{"parent/dev-1", budget.Scope{}, false},
		{"bottle/../x", budget.Scope{}, false},
	}
	for _, tt := range tests {
		got, err := parseScope(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseScope(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
