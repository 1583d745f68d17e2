package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func init() { register("meter", benchMeter) }

const (
	proxyClients   = 32    // concurrent keep-alive clients
	proxyRequests  = 20000 // requests per measured round
	proxyRounds    = 5     // rounds per proxy, interleaved; the median counts
	ttfbSamples    = 50
	meterBenchSlug = "bench-meter"
)

// benchMeter measures `bottlecap meter` against a plain
// httputil.ReverseProxy in front of the same local upstream with the same
// client load, and the first byte of a stream direct and through the meter.
// Each proxy, the daemon and the load generator (with the upstream) are
// separate processes; the meter's gate and reports go to the daemon over
// its socket.
func benchMeter(ctx context.Context, r *runner) error {
	e, err := startMeterBench(ctx, r)
	if err != nil {
		return err
	}
	defer e.stop()
	if err := e.throughput(ctx, r); err != nil {
		return err
	}
	direct, err := ttfb(ctx, e.upstream.URL+"/v1/messages")
	if err != nil {
		return fmt.Errorf("direct stream: %w", err)
	}
	metered, err := ttfb(ctx, e.meter.URL+"/v1/messages")
	if err != nil {
		return fmt.Errorf("metered stream: %w", err)
	}
	plain, err := ttfb(ctx, e.plain.URL+"/v1/messages")
	if err != nil {
		return fmt.Errorf("stream through the plain proxy: %w", err)
	}
	r.report("stream_ttfb_direct_ms", round3(ms(direct)), "ms")
	r.report("stream_ttfb_meter_ms", round3(ms(metered)), "ms")
	r.report("stream_ttfb_plain_proxy_ms", round3(ms(plain)), "ms") // the cost of one more hop
	return nil
}

// meterBench is everything the benchmark runs: an upstream, a daemon, the
// meter three times (with allowances; without them, caching the gate's
// answer; without them, asking the gate on every request), a plain proxy
// and a plain proxy that pools its copy buffers as the meter does.
type meterBench struct {
	upstream                              *benchServer
	plain, pooled, meter, uncached, allow *procServer
	daemon                                *procDaemon
}

func startMeterBench(ctx context.Context, r *runner) (*meterBench, error) {
	d, err := startProcDaemon(ctx, r, "budget: # budgets to resolve, never exhausted\n  claude: 1000G\n  codex: 1000G\n")
	if err != nil {
		return nil, err
	}
	e := &meterBench{daemon: d, upstream: serve(http.HandlerFunc(fakeProvider))}
	up := e.upstream.URL
	starts := []func() (err error){
		func() (err error) { e.plain, err = startProxyProc(ctx, "plain", up); return err },
		func() (err error) { e.pooled, err = startProxyProc(ctx, "pooled", up); return err },
		func() (err error) {
			e.meter, err = startMeterProc(ctx, r, d.sock, up, "--allowances=false")
			return err
		},
		func() (err error) {
			e.uncached, err = startMeterProc(ctx, r, d.sock, up, "--allowances=false", "--gate-cache", "0")
			return err
		},
		func() (err error) { e.allow, err = startMeterProc(ctx, r, d.sock, up); return err },
	}
	for _, start := range starts {
		if err := start(); err != nil {
			e.stop() // stops what started; the rest are nil
			return nil, err
		}
	}
	return e, nil
}

func (e *meterBench) stop() {
	for _, p := range []*procServer{e.allow, e.uncached, e.meter, e.pooled, e.plain} {
		p.stop()
	}
	e.upstream.Close()
	e.daemon.stop()
}

// throughput runs the plain proxy, the pooled plain proxy, the meter with
// its cached gate (charge after, as before allowances), the meter asking
// the gate on every request, and the meter with allowances in interleaved
// rounds and reports the median round of each. The pooled proxy shows how much of the
// meter's standing comes from reusing its copy buffers, which a plain
// httputil.ReverseProxy allocates anew (32 KiB) for every response.
func (e *meterBench) throughput(ctx context.Context, r *runner) error {
	targets := []string{e.plain.URL, e.pooled.URL, e.meter.URL, e.uncached.URL, e.allow.URL}
	rounds := make([][]loadResult, len(targets))
	for i := range proxyRounds {
		for j, u := range targets {
			res, err := load(ctx, u+"/v1/chat/completions", fmt.Sprintf("r%d-%d", i, j))
			if err != nil {
				return err
			}
			rounds[j] = append(rounds[j], res)
		}
	}
	pm, pp, mm, um, am := median(rounds[0]), median(rounds[1]), median(rounds[2]), median(rounds[3]), median(rounds[4])
	r.report("plain_proxy_rps", round(pm.rps), "req/s")
	r.report("plain_proxy_p50_us", round(micros(pm.p50)), "us")
	r.report("plain_proxy_p99_us", round(micros(pm.p99)), "us")
	r.report("meter_proxy_rps", round(mm.rps), "req/s")
	r.report("meter_proxy_p50_us", round(micros(mm.p50)), "us")
	r.report("meter_proxy_p99_us", round(micros(mm.p99)), "us")
	r.report("meter_vs_plain_ratio", round3(mm.rps/pm.rps), "ratio")
	r.report("meter_added_p50_us", round(micros(mm.p50-pm.p50)), "us")
	r.report("meter_added_p99_us", round(micros(mm.p99-pm.p99)), "us")
	r.report("pooled_plain_proxy_rps", round(pp.rps), "req/s")
	r.report("meter_vs_pooled_plain_ratio", round3(mm.rps/pp.rps), "ratio")
	r.report("meter_gate_every_request_rps", round(um.rps), "req/s")
	r.report("meter_gate_every_request_added_p50_us", round(micros(um.p50-pm.p50)), "us")
	r.report("meter_allowance_rps", round(am.rps), "req/s")
	r.report("meter_allowance_p50_us", round(micros(am.p50)), "us")
	r.report("meter_allowance_vs_naive_ratio", round3(am.rps/mm.rps), "ratio") // target ≥ 0.9
	return nil
}

// loadResult is one measured round.
type loadResult struct {
	rps      float64
	p50, p99 time.Duration
}

// median is the round with the median rate.
func median(rs []loadResult) loadResult {
	slices.SortFunc(rs, func(a, b loadResult) int { return cmp.Compare(a.rps, b.rps) })
	return rs[len(rs)/2]
}

// load sends proxyRequests requests from proxyClients keep-alive clients
// and returns the rate and the median latency.
func load(ctx context.Context, target, tag string) (loadResult, error) {
	hc := &http.Client{Transport: benchTransport()}
	defer hc.CloseIdleConnections()
	var next atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, proxyClients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range proxyClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= proxyRequests && ctx.Err() == nil; n = next.Add(1) {
				t0 := time.Now()
				if err := oneRequest(hc, target, tag+"-"+strconv.FormatInt(n, 10)); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := firstErr.Load().(error); err != nil {
		return loadResult{}, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	return loadResult{rps: float64(len(all)) / elapsed.Seconds(), p50: all[len(all)/2], p99: all[len(all)*99/100]}, nil
}

// oneRequest posts a small Chat request whose response id is id.
func oneRequest(hc *http.Client, target, id string) error {
	req, err := http.NewRequest(http.MethodPost, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Bench-Id", id)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", target, resp.Status)
	}
	return nil
}

// fakeProvider answers Chat requests with a small body carrying usage and a
// unique id (so every report is new to the daemon), and /v1/messages with
// a stream whose first event is sent at once and whose end waits for the
// client to go away.
func fakeProvider(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	if r.URL.Path == "/v1/messages" {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_"+
			strconv.FormatInt(time.Now().UnixNano(), 36)+"\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"chatcmpl-%s","object":"chat.completion","model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`,
		r.Header.Get("X-Bench-Id"))
}

// ttfb is the median time from sending a streaming request to reading the
// first byte of its body.
func ttfb(ctx context.Context, target string) (time.Duration, error) {
	var samples []time.Duration
	hc := &http.Client{Transport: benchTransport()}
	defer hc.CloseIdleConnections()
	for range ttfbSamples {
		rctx, cancel := context.WithCancel(ctx)
		req, _ := http.NewRequestWithContext(rctx, http.MethodPost, target, nil)
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			cancel()
			return 0, err
		}
		_, err = bufio.NewReader(resp.Body).ReadByte()
		samples = append(samples, time.Since(t0))
		cancel()
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
	}
	slices.Sort(samples)
	return samples[len(samples)/2], nil
}

// benchTransport is a keep-alive transport sized for the client load.
func benchTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 128, IdleConnTimeout: 90 * time.Second,
		DisableCompression: true, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
}

// benchServer is an HTTP server on a loopback port.
type benchServer struct {
	URL string
	srv *http.Server
}

func serve(h http.Handler) *benchServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err) // the loopback is always there
	}
	s := &benchServer{URL: "http://" + l.Addr().String(), srv: &http.Server{Handler: h}}
	go s.srv.Serve(l)
	return s
}

func (s *benchServer) Close() { s.srv.Close() }

func ms(d time.Duration) float64     { return float64(d) / float64(time.Millisecond) }
func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
