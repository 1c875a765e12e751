// Command testbox is the real node's test image: one static binary, run as
// uid 10001 on a read-only root, that the realnode tests use as server, client
// and CPU load.
//
//	testbox serve [--listen :8080]   HTTP: / says which pod answered, /burn?ms=N spins a CPU for N ms
//	testbox resolve NAME             prints NAME's addresses (the pod's resolv.conf: cluster DNS)
//	testbox get URL                  prints the body of an HTTP GET (exit 1 on error or non-2xx)
//	testbox sleep                    waits for SIGTERM
//	testbox echo WORDS...            prints its arguments (kubectl exec checks)
//	testbox self                     prints uid, gid and whether / is writable
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: testbox serve|resolve|get|sleep|echo ...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		serve(args)
	case "resolve":
		resolve(args)
	case "get":
		get(args)
	case "sleep":
		waitSignal()
	case "self":
		_, err := os.Create("/testbox-write-probe")
		fmt.Printf("uid=%d gid=%d root-writable=%t\n", os.Getuid(), os.Getgid(), err == nil)
	case "echo":
		fmt.Println(strings.Join(args, " "))
	default:
		fail("unknown command " + os.Args[1])
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "testbox:", msg)
	os.Exit(1)
}

func waitSignal() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", ":8080", "address to listen on")
	_ = fs.Parse(args)
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	mux.HandleFunc("/burn", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 || ms > 1000 {
			http.Error(w, "ms must be an integer in 0..1000", http.StatusBadRequest)
			return
		}
		deadline := time.Now().Add(time.Duration(ms) * time.Millisecond)
		n := 0
		for time.Now().Before(deadline) {
			n++
		}
		fmt.Fprintf(w, "%s burned %d ms (%d loops)\n", host, ms, n)
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		waitSignal()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	fmt.Printf("testbox serving on %s\n", *listen)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fail(err.Error())
	}
}

func resolve(args []string) {
	if len(args) != 1 {
		fail("usage: testbox resolve NAME")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, args[0])
	if err != nil {
		fail(err.Error())
	}
	fmt.Println(strings.Join(addrs, "\n"))
}

func get(args []string) {
	if len(args) != 1 {
		fail("usage: testbox get URL")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(args[0])
	if err != nil {
		fail(err.Error())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	os.Stdout.Write(body)
	if resp.StatusCode/100 != 2 {
		fail(resp.Status)
	}
}
