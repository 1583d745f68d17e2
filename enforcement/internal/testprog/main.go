// Command testprog is the one static binary the enforcement integration
// tests put in their FROM-scratch image. Its first argument picks a role:
//
//	upstream ADDR          HTTP server answering "upstream ok"
//	sidecar ADDR URL FILE  HTTP server: /fetch gets URL, /hups counts SIGHUPs,
//	                       /routes shows FILE as read at the last SIGHUP
//	get URL                print URL's body; exit 1 on failure
//	report SOCK BOTTLE ID  POST one usage report for BOTTLE to the daemon's
//	                       unix socket SOCK; print the HTTP status code
//	orphan SOCK MARKER (METHOD PATH BODY)...
//	                       open one connection to SOCK per request from a
//	                       child process that hands them over and exits;
//	                       once the child is reaped, create MARKER, send
//	                       each request on its connection and print the
//	                       HTTP status codes
//	request SOCK (METHOD PATH BODY)...
//	                       send each request on a connection of its own
//	                       to SOCK and print the HTTP status codes (the
//	                       bodies are not read: an event stream's never
//	                       ends)
//	anthropic-upstream ADDR INPUT OUTPUT
//	                       a fake Anthropic API: each POST /v1/messages
//	                       gets a message (a fresh id) whose usage is
//	                       INPUT and OUTPUT tokens; GET /count prints how
//	                       many it answered
//	messages               send one Messages request with the official
//	                       SDK to $ANTHROPIC_BASE_URL, as an agent does;
//	                       print the HTTP status and the reply's text or
//	                       the error the SDK shows
//	sleep                  wait for SIGTERM
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: testprog upstream|sidecar|get|report|orphan|request|anthropic-upstream|messages|sleep ...")
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
	case "orphan":
		orphan(os.Args[2], os.Args[3], os.Args[4:])
	case "request":
		request(os.Args[2], os.Args[3:])
	case "orphan-child":
		orphanChild(os.Args[2], os.Args[3])
	case "anthropic-upstream":
		anthropicUpstream(os.Args[2], os.Args[3], os.Args[4])
	case "messages":
		messages()
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

// orphan makes connections whose connecting process is gone: the daemon
// can no longer read that process's /proc entry, and its pid may be
// reused. This is how a process in a container once passed for a host
// process.
func orphan(sock, marker string, reqs []string) {
	if len(reqs) == 0 || len(reqs)%3 != 0 {
		fail("orphan: want METHOD PATH BODY triples")
	}
	n := len(reqs) / 3
	conns := connectInChild(sock, n)
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		fail(err.Error())
	}
	codes := make([]string, n)
	for i, c := range conns {
		codes[i] = send(c, reqs[3*i], reqs[3*i+1], reqs[3*i+2])
	}
	fmt.Print(strings.Join(codes, " "))
}

// connectInChild runs orphan-child, receives its n connections and reaps it.
func connectInChild(sock string, n int) []net.Conn {
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		fail(err.Error())
	}
	childEnd := os.NewFile(uintptr(pair[1]), "child")
	cmd := exec.Command("/proc/self/exe", "orphan-child", sock, strconv.Itoa(n))
	cmd.ExtraFiles = []*os.File{childEnd}
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil { // Run waits: the child is reaped
		fail("orphan-child: " + err.Error())
	}
	childEnd.Close()
	oob := make([]byte, syscall.CmsgSpace(4*n))
	_, oobn, _, _, err := syscall.Recvmsg(pair[0], make([]byte, 1), oob, 0)
	if err != nil {
		fail(err.Error())
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		fail(fmt.Sprintf("control messages: %v", err))
	}
	fds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != n {
		fail(fmt.Sprintf("got %d fds (%v), want %d", len(fds), err, n))
	}
	conns := make([]net.Conn, n)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "conn")
		if conns[i], err = net.FileConn(f); err != nil {
			fail(err.Error())
		}
		f.Close()
	}
	return conns
}

// orphanChild connects n times to sock, passes the connections to its
// parent over fd 3 and exits.
func orphanChild(sock, count string) {
	n, _ := strconv.Atoi(count)
	var fds []int
	for range n {
		c, err := net.Dial("unix", sock)
		if err != nil {
			fail(err.Error())
		}
		f, err := c.(*net.UnixConn).File()
		if err != nil {
			fail(err.Error())
		}
		fds = append(fds, int(f.Fd()))
	}
	if err := syscall.Sendmsg(3, []byte{0}, syscall.UnixRights(fds...), nil, 0); err != nil {
		fail(err.Error())
	}
	os.Exit(0)
}

// send writes one HTTP request on c and returns the reply's status code.
func send(c net.Conn, method, path, body string) string {
	req, err := http.NewRequest(method, "http://bottlecap"+path, strings.NewReader(body))
	if err != nil {
		fail(err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	if err := req.Write(c); err != nil {
		return "write:" + err.Error()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return "read:" + err.Error()
	}
	// The body is left unread (closing it would read it to its end, and
	// an event stream has none); the connection goes when the program
	// exits.
	return strconv.Itoa(resp.StatusCode)
}

// request sends METHOD PATH BODY triples, each on a connection of its own,
// from inside the container, and prints the status codes.
func request(sock string, reqs []string) {
	if len(reqs) == 0 || len(reqs)%3 != 0 {
		fail("request: want METHOD PATH BODY triples")
	}
	var codes []string
	for i := 0; i < len(reqs); i += 3 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			fail(err.Error())
		}
		codes = append(codes, send(c, reqs[i], reqs[i+1], reqs[i+2]))
	}
	fmt.Print(strings.Join(codes, " "))
}

// anthropicUpstream answers every Messages call with the same usage and a
// fresh message id (the meter's report id), never streaming.
func anthropicUpstream(addr, input, output string) {
	in, err1 := strconv.Atoi(input)
	out, err2 := strconv.Atoi(output)
	if err := errors.Join(err1, err2); err != nil {
		fail(err.Error())
	}
	prefix := make([]byte, 6)
	rand.Read(prefix)
	var answered atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n := answered.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": fmt.Sprintf("msg_%s_%d", hex.EncodeToString(prefix), n), "type": "message", "role": "assistant",
			"model": "claude-test", "content": []map[string]any{{"type": "text", "text": "upstream ok"}},
			"stop_reason": "end_turn", "usage": map[string]any{"input_tokens": in, "output_tokens": out},
		})
	})
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, answered.Load()) })
	serve(addr, mux)
}

// messages is an agent's turn: the SDK finds the meter through
// $ANTHROPIC_BASE_URL. A refusal is printed, not retried.
func messages() {
	c := anthropic.NewClient(option.WithAPIKey("sk-ant-test"), option.WithMaxRetries(0), option.WithRequestTimeout(10*time.Second))
	msg, err := c.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model: "claude-test", MaxTokens: 16,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	})
	var apiErr *anthropic.Error
	switch {
	case errors.As(err, &apiErr):
		fmt.Printf("%d %s", apiErr.StatusCode, apiErr.Error())
	case err != nil:
		fail(err.Error())
	default:
		fmt.Printf("200 %s", msg.Content[0].Text)
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
