package tui_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/client/clienttest"
	"github.com/bot-bottle/bottlecap/tui"
)

func TestClientDaemonAct(t *testing.T) {
	srv := clienttest.NewServer(t)
	srv.Reply("POST /v1/bottles/{slug}/actions", http.StatusAccepted, api.Action{ID: 1, Bottle: "b1", Kind: "cutoff", Status: "pending"})
	d := tui.NewClientDaemon(client.New(srv.Socket, client.WithRetry(0)))
	if err := d.Act(context.Background(), "b1", budget.ActCutoff, "why"); err != nil {
		t.Fatal(err)
	}
	last := srv.Last()
	var got api.ActionRequest
	if err := json.Unmarshal(last.Body, &got); err != nil {
		t.Fatal(err)
	}
	if last.Path != "/v1/bottles/b1/actions" || got != (api.ActionRequest{Action: "cutoff", Reason: "why"}) {
		t.Errorf("request = %s %+v", last.Path, got)
	}
}

func TestClientDaemonProbe(t *testing.T) {
	tests := []struct {
		name   string
		status int
		want   bool
	}{
		{"status answered", http.StatusOK, true},
		{"refused to a non-operator", http.StatusForbidden, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := clienttest.NewServer(t)
			srv.Reply("GET /v1/status", tt.status, api.Status{Version: "test", Held: map[string]int64{"claude": 7}, Fleet: &api.FleetStatus{Host: "ci-1"}})
			d := tui.NewClientDaemon(client.New(srv.Socket, client.WithRetry(0)))
			got := d.Probe(context.Background())
			answered := tt.status == http.StatusOK
			if got.Up != tt.want || answered != (got.Held["claude"] == 7) || got.StatusRead != answered {
				t.Errorf("probe = %+v, want up %v and the status's held when it answered", got, tt.want)
			}
			if answered != (got.Fleet != nil && got.Fleet.Host == "ci-1") {
				t.Errorf("probe fleet = %+v, want the status's fleet when it answered", got.Fleet)
			}
		})
	}
	t.Run("no socket", func(t *testing.T) {
		d := tui.NewClientDaemon(client.New(filepath.Join(t.TempDir(), "none.sock"), client.WithRetry(0)))
		if d.Probe(context.Background()).Up {
			t.Error("reachable with no daemon")
		}
		if _, err := d.Events(context.Background()); err == nil {
			t.Error("events opened with no daemon")
		}
	})
}
