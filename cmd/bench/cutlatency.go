package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
	"github.com/bot-bottle/bottlecap/client"
	"github.com/bot-bottle/bottlecap/enforcement/dockerlab"
)

func init() { register("cut", benchCut) }

const (
	cutSamples = 100
	cutSlug    = "bench-cut"
	// cutRestoreWait bounds the wait for a restored bottle to be admitted
	// again (the meter learns of the restore from the daemon's events).
	cutRestoreWait = 10 * time.Second
)

// benchCut measures how soon an operator's cutoff ends a live stream: from
// just before the cutoff is asked for (so the time includes its commit) to
// the moment the stream's client has read the meter's final error event.
// The daemon runs in this process with an engine that has no containers
// (so a cutoff and a restore finish at once and each sample starts from an
// active bottle); the meter is the real binary, in its own process.
func benchCut(ctx context.Context, r *runner) error {
	up := serve(http.HandlerFunc(agentProvider))
	defer up.Close()
	d, err := startEnforceDaemon(ctx, dockerlab.NewFirstCallEngine(), benchDaemonID)
	if err != nil {
		return err
	}
	defer d.stop()
	c := client.New(d.sock)
	defer c.Close()
	if _, err := c.PutBottle(ctx, cutSlug, api.BottleRequest{Budget: budget.Limits{"claude": budget.Lifetime(1 << 40)}}); err != nil {
		return err
	}
	m, err := startMeterProc(ctx, r, d.sock, up.URL, "--bottle", cutSlug)
	if err != nil {
		return err
	}
	defer m.stop()
	hc := &http.Client{Transport: benchTransport()}
	defer hc.CloseIdleConnections()
	var lat []time.Duration
	for range cutSamples {
		dt, err := cutOneStream(ctx, hc, c, m.URL+"/v1/messages")
		if err != nil {
			return err
		}
		lat = append(lat, dt)
	}
	slices.Sort(lat)
	r.report("cut_latency_p50_ms", round3(ms(lat[len(lat)/2])), "ms")
	r.report("cut_latency_p99_ms", round3(ms(lat[len(lat)*99/100])), "ms")
	return nil
}

// cutOneStream starts an endless stream, cuts the bottle off once the
// stream is flowing, times the arrival of the error event, and restores
// the bottle.
func cutOneStream(ctx context.Context, hc *http.Client, c *client.Client, target string) (time.Duration, error) {
	resp, err := openEndlessStream(ctx, hc, target)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !scanTo(sc, "event: content_block_delta") {
		return 0, fmt.Errorf("the stream ended before its first delta: %v", sc.Err())
	}
	t0 := time.Now()
	if _, err := c.Act(ctx, cutSlug, api.ActionRequest{Action: "cutoff", Reason: "bench: cut latency"}); err != nil {
		return 0, err
	}
	if !scanTo(sc, "event: error") || !sc.Scan() { // the event's data line completes it
		return 0, fmt.Errorf("the stream ended without the meter's error event: %v", sc.Err())
	}
	dt := time.Since(t0)
	if _, err := c.Act(ctx, cutSlug, api.ActionRequest{Action: "restore", Reason: "bench: next sample"}); err != nil {
		return 0, err
	}
	return dt, nil
}

// openEndlessStream starts a stream that the fake provider never ends
// (its request's max_tokens is far above what passes before the cut, which
// the meter would otherwise make on its own once the stream passed the cap),
// retrying while the meter still refuses the bottle (it learns of the last
// sample's restore from the daemon's events, a moment after the daemon).
func openEndlessStream(ctx context.Context, hc *http.Client, target string) (*http.Response, error) {
	deadline := time.Now().Add(cutRestoreWait)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target,
			strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":64000,"stream":true,"messages":[{"role":"user","content":"go on"}]}`))
		if err != nil {
			return nil, err
		}
		req.Header.Set(endlessHeader, "1")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusOK {
			return resp, nil
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the meter still refuses the restored bottle: %s: %s", resp.Status, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// scanTo reads lines until one equals line.
func scanTo(sc *bufio.Scanner, line string) bool {
	for sc.Scan() {
		if sc.Text() == line {
			return true
		}
	}
	return false
}
