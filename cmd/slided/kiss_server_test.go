//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slided/slided/internal/direwolftest"
	"github.com/slided/slided/internal/lab"
	"github.com/slided/slided/phy/kiss"
	"github.com/slided/slided/phy/kiss/kissproto"
)

// kissHub is a fake radio channel for two KISS TNCs: it listens on
// 127.0.0.1:8001 in each namespace, takes one connection on each (a
// daemon's kiss-tcp modem), and forwards every KISS data frame one side
// sends to the other, untouched. Parameters are dropped. Its goroutines
// exit when the test's cleanup closes the listeners and connections.
func kissHub(t *testing.T, ns [2]string) {
	t.Helper()
	var conns [2]chan net.Conn
	for i := range 2 {
		ln, err := direwolftest.ListenIn(ns[i], "tcp", "127.0.0.1:8001")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		conns[i] = make(chan net.Conn, 4)
		go func(ln net.Listener, ch chan<- net.Conn) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				ch <- c
			}
		}(ln, conns[i])
	}
	go func() {
		var mu sync.Mutex
		var cur [2]net.Conn
		for {
			var c net.Conn
			var i int
			select {
			case c = <-conns[0]:
			case c = <-conns[1]:
				i = 1
			case <-time.After(5 * time.Minute):
				return
			}
			mu.Lock()
			cur[i] = c
			mu.Unlock()
			go func(i int, c net.Conn) {
				defer c.Close()
				dec := kissproto.NewDecoder(4096)
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					dec.Feed(buf[:n], func(port, cmd byte, data []byte) {
						if cmd != kissproto.CmdData {
							return
						}
						mu.Lock()
						other := cur[1-i]
						mu.Unlock()
						if other != nil {
							other.Write(kissproto.AppendFrame(nil, port, kissproto.CmdData, data))
						}
					})
					if err != nil {
						return
					}
				}
			}(i, c)
		}
	}()
}

// aprsUI is an APRS position-style AX.25 UI frame from N0CALL-i to APRS,
// numbered n.
func aprsUI(i, n int) []byte {
	b, err := kiss.UIFrame("APRS", fmt.Sprintf("N0CALL-%d", i), fmt.Appendf(nil, "!4903.50N/07201.75W-test %d from %d \xc0\xdb", n, i))
	if err != nil {
		panic(err) // the calls are constants of the test
	}
	return b
}

// TestKISSServerShared: an APRS-style client beside slided on each of two
// daemons sharing a (fake) TNC channel through -kiss-server. Pings cross
// between the daemons while each client sends frames; every client frame
// reaches the other client untouched, none is lost, and no slided frame
// reaches a client.
func TestKISSServerShared(t *testing.T) {
	l, ns, dir := newModemLab(t, "kisssrv")
	kissHub(t, ns)
	const q = "?air=38400&txdelay=0ms&txtail=0ms"
	p := startDaemons(t, l, dir, ns, [2]string{"kiss-tcp:127.0.0.1:8001" + q, "kiss-tcp:127.0.0.1:8001" + q}, "198.51.100",
		"-kiss-server", "8011")

	var clients [2]net.Conn
	for i := range 2 {
		dial := direwolftest.DialIn(ns[i])
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := dial(context.Background(), "tcp", "127.0.0.1:8011")
			if err == nil {
				clients[i] = c
				t.Cleanup(func() { c.Close() })
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node%d: kiss server not reachable: %v", i+1, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// A frame heard before a daemon's server has taken its client in (the
	// kernel completes the connection before Accept returns) is not that
	// client's: wait until both servers have, so that every frame sent
	// below is owed to the other client.
	for i := range 2 {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(lab.Tail(p.Logs[i+1], 1<<20), "kiss server: client connected") {
			if time.Now().After(deadline) {
				t.Fatalf("node%d: its kiss server did not log the client", i+1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Each client reads what its daemon passes on.
	type rx struct {
		mu     sync.Mutex
		frames []string
	}
	var got [2]rx
	for i := range 2 {
		go func(i int) {
			dec := kissproto.NewDecoder(4096)
			buf := make([]byte, 4096)
			for {
				n, err := clients[i].Read(buf)
				dec.Feed(buf[:n], func(port, cmd byte, data []byte) {
					got[i].mu.Lock()
					got[i].frames = append(got[i].frames, fmt.Sprintf("%d/%d/%x", port, cmd, data))
					got[i].mu.Unlock()
				})
				if err != nil {
					return
				}
			}
		}(i)
	}

	const n = 10
	var pingWG sync.WaitGroup
	var replies [2]int
	for i := range 2 {
		pingWG.Add(1)
		go func(i int) {
			defer pingWG.Done()
			replies[i] = pingCount(t, l, ns[i], p.Addr[1-i], 3, 15*time.Second)
		}(i)
	}
	for k := 0; k < n; k++ {
		for i := range 2 {
			if _, err := clients[i].Write(kissproto.AppendFrame(nil, 0, kissproto.CmdData, aprsUI(i+1, k))); err != nil {
				t.Fatalf("client %d: %v", i+1, err)
			}
		}
		time.Sleep(50 * time.Millisecond) // an APRS client's pace, not a measurement
	}
	pingWG.Wait()
	for i := range 2 {
		if replies[i] < 3 {
			t.Errorf("ping node%d → node%d: %d of 3 replies", i+1, 2-i, replies[i])
		}
	}
	// Every frame of the other client, untouched; nothing else.
	deadline := time.Now().Add(20 * time.Second)
	for i := range 2 {
		want := map[string]bool{}
		for k := 0; k < n; k++ {
			want[fmt.Sprintf("0/0/%x", aprsUI(2-i, k))] = true
		}
		for {
			got[i].mu.Lock()
			frames := append([]string(nil), got[i].frames...)
			got[i].mu.Unlock()
			seen := 0
			for _, f := range frames {
				if !want[f] {
					t.Fatalf("client %d got a frame that is not the other client's: %.60s", i+1, f)
				}
				seen++
			}
			if seen == n {
				break
			}
			if time.Now().After(deadline) {
				// Say where the frames were lost: the TNCs' counters
				// (frames of other programs written, refused, heard)
				// and the kiss server lines of the daemons' logs.
				for j := range 2 {
					if st := cliStatus(t, p, j); st.TNC != nil {
						t.Logf("node%d tnc: %+v", j+1, *st.TNC)
					}
					t.Logf("node%d log:\n%s", j+1, lab.Tail(p.Logs[j+1], 40))
				}
				t.Fatalf("client %d: %d of %d frames from the other client", i+1, seen, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for i := range 2 {
		st := checkNoHostDrops(t, p, i)
		t.Logf("node%d: tx %d rx %d frames", i+1, st.Bridge.TxFrames, st.Bridge.RxFrames)
	}
}
