package direwolftest

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"
)

func TestDialListenIn(t *testing.T) {
	ns := NewNS(t, fmt.Sprintf("slided-kiss-%d-ns", os.Getpid()))
	l, err := ListenIn(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c) // echo until the client closes
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := DialIn(ns)(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	if _, err := DialIn("slided-kiss-no-such-ns")(ctx, "tcp", l.Addr().String()); err == nil {
		t.Fatal("dial in a missing namespace succeeded")
	}
}
