package client_test

import (
	"testing"

	"github.com/bot-bottle/bottlecap/client"
)

func TestResolveSocket(t *testing.T) {
	tests := []struct {
		name                string
		flag, env, settings string
		want                string
	}{
		{"flag wins", "/f.sock", "/e.sock", "/s.sock", "/f.sock"},
		{"env over settings", "", "/e.sock", "/s.sock", "/e.sock"},
		{"settings over default", "", "", "/s.sock", "/s.sock"},
		{"default under home", "", "", "", "/h/run/bottlecap.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := client.ResolveSocket(tt.flag, tt.env, tt.settings, "/h"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSocketPath(t *testing.T) {
	if got, want := client.SocketPath("/h", ""), "/h/run/bottlecap.sock"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := client.SocketPath("/h", "/x.sock"), "/x.sock"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
