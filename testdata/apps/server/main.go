// Command server is the sample app of the end-to-end tests: a small HTTP
// service whose behaviour the test chooses through its environment, built
// into testdata/apps/web by the tests (no Go image can be pulled to build it
// inside Docker).
//
//	PORT         port to listen on (default 5000)
//	GREETING     text of GET /
//	START_DELAY  seconds to wait before listening (a slow rollout)
//	HEALTH_FAIL  "1": GET /health answers 500
//	HEALTH_FAIL_AFTER  unix time: a process started after it answers
//	             GET /health with 500 (old processes healthy, new ones not)
//	CRASH        "1": exit 3 at once
//	COUNT_TO     print "line N" for N = 1..COUNT_TO at start (log tests)
//	TICK_MS      print "tick N" every TICK_MS milliseconds, N = 1, 2, …
//	EXIT_AFTER   seconds after which to exit with code 1 (a crash loop)
//	ECHO_PORT    also serve a TCP echo on this port (balancer tests)
//
// Besides GET / it serves /health, /hostname, /env/{key}, /file, /headers
// (Host and X-Forwarded-*), /sleep/{ms}, /size (of the request body) and
// /ws, a websocket that echoes each message back as "<hostname>:
// <message>", of the same type, so a test can tell which process answered.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	after, _ := strconv.ParseInt(os.Getenv("HEALTH_FAIL_AFTER"), 10, 64)
	startedLate := after > 0 && time.Now().Unix() > after
	if os.Getenv("CRASH") == "1" {
		fmt.Println("crashing as asked")
		os.Exit(3)
	}
	if n, _ := strconv.Atoi(os.Getenv("COUNT_TO")); n > 0 {
		for i := 1; i <= n; i++ {
			fmt.Printf("line %d\n", i)
		}
	}
	if ms, _ := strconv.Atoi(os.Getenv("TICK_MS")); ms > 0 {
		go func() {
			for i := 1; ; i++ {
				fmt.Printf("tick %d\n", i)
				time.Sleep(time.Duration(ms) * time.Millisecond)
			}
		}()
	}
	if d, _ := strconv.Atoi(os.Getenv("EXIT_AFTER")); d > 0 {
		time.AfterFunc(time.Duration(d)*time.Second, func() {
			fmt.Println("exiting as asked")
			os.Exit(1)
		})
	}
	if p := os.Getenv("ECHO_PORT"); p != "" {
		ln, err := net.Listen("tcp", ":"+p)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		go echo(ln)
	}
	if d, _ := strconv.Atoi(os.Getenv("START_DELAY")); d > 0 {
		fmt.Printf("waiting %ds before listening\n", d)
		time.Sleep(time.Duration(d) * time.Second)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "5000"
	}
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s from %s/%s release %s\n", os.Getenv("GREETING"), os.Getenv("APP"), os.Getenv("SERVICE"), os.Getenv("RELEASE"))
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("HEALTH_FAIL") == "1" || startedLate {
			http.Error(w, "unhealthy as asked", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/hostname", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, host) })
	mux.HandleFunc("/env/{key}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, os.Getenv(r.PathValue("key")))
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Query().Get("path")
		if v := r.URL.Query().Get("write"); v != "" {
			if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
		}
		data, err := os.ReadFile(path)
		if err != nil {
			http.Error(w, err.Error(), 404)
			return
		}
		w.Write(data)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) { wsEcho(w, r, host) })
	// What the router told the process about the request.
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Host: %s\n", r.Host)
		for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Proto"} {
			fmt.Fprintf(w, "%s: %s\n", k, r.Header.Get(k))
		}
	})
	mux.HandleFunc("/sleep/{ms}", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.PathValue("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			fmt.Fprintln(w, "slept")
		case <-r.Context().Done():
		}
	})
	// The size of the request body, read whole.
	mux.HandleFunc("/size", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, n)
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		fmt.Println("stopping on SIGTERM")
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Printf("Starting %s on port %s\n", os.Getenv("SERVICE"), port)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Println(err)
		os.Exit(1)
	}
}

// echo copies what each connection sends back to it, then, once the client
// has finished sending, writes its hostname and closes: a half-close test.
func echo(ln net.Listener) {
	host, _ := os.Hostname()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
			fmt.Fprintf(c, "bye from %s\n", host)
		}()
	}
}

// upgrader accepts any origin: the tests' clients are not browsers.
var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// wsEcho upgrades r and echoes every message as "<host>: <message>" until
// the client closes; gorilla answers the client's close and pings.
func wsEcho(w http.ResponseWriter, r *http.Request, host string) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered the client
	}
	defer c.Close()
	for {
		typ, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(typ, append([]byte(host+": "), msg...)); err != nil {
			return
		}
	}
}
