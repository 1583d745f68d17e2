// Command testprog is the one static binary the enforcement integration
// tests put in their FROM-scratch image. Its first argument picks a role:
//
//	upstream ADDR          HTTP server answering "upstream ok"
//	sidecar ADDR URL FILE  HTTP server: /fetch gets URL, /hups counts SIGHUPs,
//	                       /routes shows FILE as read at the last SIGHUP
//	get URL                print URL's body; exit 1 on failure
//	report SOCK BOTTLE ID  POST one usage report for BOTTLE to the daemon's
//	                       unix socket SOCK; print the HTTP status code
//	sleep                  wait for SIGTERM
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: testprog upstream|sidecar|get|report|sleep ...")
	}
	go exitOnTerm()
	switch os.Args[1] {
	case "upstream":
		serve(os.Args[2], http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, "upstream ok")
		}))
	case "sidecar":
		sidecar(os.Args[2], os.Args[3], os.Args[4])
	case "get":
		get(os.Args[2])
	case "report":
		report(os.Args[2], os.Args[3], os.Args[4])
	case "sleep":
		select {}
	default:
		fail("unknown role " + os.Args[1])
	}
}

// exitOnTerm makes PID 1 honour docker stop at once.
func exitOnTerm() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
	os.Exit(0)
}

func sidecar(addr, upstream, routes string) {
	var hups atomic.Int64
	var mu sync.Mutex
	var seen []byte
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			b, _ := os.ReadFile(routes)
			mu.Lock()
			seen = b
			mu.Unlock()
			hups.Add(1)
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/hups", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, hups.Load()) })
	mux.HandleFunc("/routes", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Write(seen)
	})
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, _ *http.Request) {
		// No keep-alive: a pooled connection would outlive a cutoff.
		c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(upstream)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	serve(addr, mux)
}

func serve(addr string, h http.Handler) {
	fail(http.ListenAndServe(addr, h).Error())
}

func get(url string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fail(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	os.Stdout.Write(b)
	if resp.StatusCode != http.StatusOK {
		os.Exit(1)
	}
}

// report speaks to the daemon as a sidecar does: one report over the unix
// socket, from inside the container, so the daemon sees a container peer.
func report(sock, bottle, id string) {
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	body := fmt.Sprintf(`{"id":%q,"bottle":%q,"provider":"claude","input_tokens":1,"complete":true}`, id, bottle)
	resp, err := c.Post("http://bottlecap/v1/usage", "application/json", strings.NewReader(body))
	if err != nil {
		fail(err.Error())
	}
	defer resp.Body.Close()
	fmt.Print(resp.StatusCode)
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
