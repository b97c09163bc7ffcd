// heapapp: a Go program for the heap-capture tests of pressure-actions.
//
// It records every allocation in its heap profile (runtime.MemProfileRate = 1).
// It retains about 48 MiB allocated by retainLarge and 8 MiB by retainSmall, runs a GC so the heap
// profile reflects them, serves net/http/pprof on 127.0.0.1 (port 0 or the first argument) and prints
// "listening on ADDR" once ready. GET /leak?mb=N retains N MiB more in main.leak (and runs a GC, so
// the next heap profile shows them) before it answers "ok": the growth between two captures.
// Standard library only.
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"strconv"
)

var retained [][]byte

//go:noinline
func retainLarge() {
	for i := 0; i < 48; i++ {
		b := make([]byte, 1<<20)
		b[0] = byte(i)
		retained = append(retained, b)
	}
}

//go:noinline
func retainSmall() {
	for i := 0; i < 8; i++ {
		b := make([]byte, 1<<20)
		b[0] = byte(i)
		retained = append(retained, b)
	}
}

//go:noinline
func leak(mb int) {
	for i := 0; i < mb; i++ {
		b := make([]byte, 1<<20)
		b[0] = byte(i)
		retained = append(retained, b)
	}
}

func init() {
	// Every allocation in the profile, not a 1-in-512-KiB sample: the tests compare the sizes with
	// what was allocated, and a sampled estimate of 24 one-MiB allocations ranged from 13 to 17
	// samples, 16 to 21 MB (5 of 25 runs out of the tests' bounds).
	runtime.MemProfileRate = 1
}

func main() {
	http.HandleFunc("/leak", func(w http.ResponseWriter, r *http.Request) {
		mb, err := strconv.Atoi(r.URL.Query().Get("mb"))
		if err != nil || mb < 0 || mb > 256 {
			http.Error(w, "mb: 0 to 256", http.StatusBadRequest)
			return
		}
		leak(mb)
		runtime.GC()
		fmt.Fprintln(w, "ok")
	})
	retainLarge()
	retainSmall()
	runtime.GC()
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = "127.0.0.1:" + os.Args[1]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
