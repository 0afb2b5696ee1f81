// Command server is the docker package's test workload: a static HTTP
// server (no libc, so it runs in any image) that answers GET / with its
// GREETING environment variable and exits 0 on SIGTERM. The tests build it
// with CGO_ENABLED=0 into an image FROM convoxtest/debian:bookworm.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	port := flag.String("port", "8080", "port to listen on")
	flag.Parse()
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		fmt.Println("terminated")
		os.Exit(0)
	}()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, os.Getenv("GREETING"))
	})
	fmt.Println("listening on", *port)
	if err := http.ListenAndServe(":"+*port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
