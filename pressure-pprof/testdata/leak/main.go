// leak: a Go program that leaks, for the diff-base tests of pressure-pprof.
//
// It keeps a steady working set (a buffer pool made once at start and a cache that is refilled but
// never grows), churns short-lived garbage, and leaks in two places at different rates: sessions
// that are never closed (main.(*sessionTable).open, through an inlined helper) and log lines kept
// forever (main.appendLog). It writes two heap profiles with runtime/pprof from the one process:
// OUT/leak-1.pb.gz after the first phase and OUT/leak-2.pb.gz after the second, each after a
// runtime.GC() so that the in-use figures are current. `go tool pprof -top -diff_base=leak-1.pb.gz
// leak-2.pb.gz` then shows the leak. Standard library only; no modules needed:
//
//	cd pressure-pprof/testdata/leak && GO111MODULE=off go run main.go -out ../profiles
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
)

type session struct {
	id    int
	state []byte
	tags  map[string]string
}

type sessionTable struct {
	live map[int]*session
}

var (
	sessions = &sessionTable{live: map[int]*session{}}
	logLines []string
	pool     [][]byte
	cache    = map[int][]byte{}
	sink     []byte
)

//go:noinline
func makePool() {
	for i := 0; i < 64; i++ {
		pool = append(pool, make([]byte, 64<<10))
	}
}

// newState is small enough to be inlined into open.
func newState(n int) []byte { return make([]byte, n) }

//go:noinline
func (t *sessionTable) open(id int) {
	s := &session{id: id, state: newState(16 << 10), tags: map[string]string{"id": fmt.Sprint(id)}}
	t.live[id] = s
}

//go:noinline
func appendLog(i int) {
	logLines = append(logLines, strings.Repeat(fmt.Sprintf("request %d served;", i), 40))
}

//go:noinline
func refreshCache(i int) {
	// A bounded cache: 32 slots overwritten in turn, so its size stays the same.
	cache[i%32] = make([]byte, 32<<10)
}

//go:noinline
func churn(i int) {
	for j := 0; j < 8; j++ {
		sink = make([]byte, 8<<10+j)
	}
}

func serve(from, to int) {
	for i := from; i < to; i++ {
		sessions.open(i)
		if i%2 == 0 {
			appendLog(i)
		}
		refreshCache(i)
		churn(i)
	}
}

func write(path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	out := flag.String("out", ".", "directory for leak-1.pb.gz and leak-2.pb.gz")
	first := flag.Int("first", 2000, "requests served before the first profile")
	second := flag.Int("second", 6000, "requests served before the second profile (in total)")
	rate := flag.Int("rate", 64<<10, "runtime.MemProfileRate")
	flag.Parse()
	runtime.MemProfileRate = *rate
	makePool()
	serve(0, *first)
	write(filepath.Join(*out, "leak-1.pb.gz"))
	serve(*first, *second)
	write(filepath.Join(*out, "leak-2.pb.gz"))
	fmt.Printf("sessions=%d log=%d pool=%d cache=%d\n", len(sessions.live), len(logLines), len(pool), len(cache))
}
