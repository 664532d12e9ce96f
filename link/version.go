package link

// Wire-format versions per peer (docs/frame-format.md, "Versions").
//
// Every node decodes versions 1 to 4 and sends version 1 unless it knows
// that the destination speaks 2 or later; then it sends the highest version
// both speak. It learns that from a version-2 or later frame or a KindHello
// from the node (its payload: the highest version the node speaks). A node that receives a version-1 unicast frame
// from a node (which therefore does not know that we speak 2) answers it
// with a KindHello (link ARQ frames only: polls and Acks; a link without
// ARQ stays at version 1): the first three at most one a second (a hello
// can be lost), then one per helloEvery; the hello is a version-1
// frame, so that a version-1 node counts it as an ignored kind
// (arq.Stats.Ignored). Compressed headers (KindIPHC) go only in version-2
// or later frames, compressed TCP headers (framing.AppendIPHCVersion) only
// to a version-3 or -4 peer, and elided UDP and TCP checksums only to a
// version-4 peer. What is known of a peer expires versionHold after its
// last version-2 or later frame or hello, and is forgotten when the peer starts its
// numbering anew in a version-1 frame (a First fragment: it has restarted,
// and may be an older build).

import (
	"time"

	"github.com/slided/slided/framing"
	"github.com/slided/slided/mac/arq"
)

const (
	// helloEvery bounds the hellos to one node: one per 30 s costs a 10-byte
	// frame, under 0.01 % of a 115200 bit/s channel. The first helloQuick
	// hellos to a node (since it was last heard to restart) may come
	// helloQuickEvery apart, so that a lost hello costs one more poll,
	// not 30 s.
	helloEvery      = 30 * time.Second
	helloQuick      = 3
	helloQuickEvery = time.Second
	// versionHold is how long a version-2 peer stays one without a
	// version-2 frame or hello from it. Short, because relearning costs one
	// hello, and a peer replaced by an older build that only listens loses
	// our version-2 frames until it expires.
	versionHold = time.Minute
)

// versions is what this node knows of each peer's format version. The
// engine's goroutine owns it. The zero value is a node that speaks
// framing.MaxVersion.
type versions struct {
	// v1Only makes the node behave as a version-1 build (tests of mixed
	// networks): it sends only version 1 and no hello, and drops version-2
	// frames as a version-1 decoder does (BadVersion there, BadFrame here).
	v1Only bool
	// upTo, from framing.Version2 up, makes it a build that speaks versions
	// up to upTo (tests): it announces and sends upTo at most and drops
	// later frames. 0 is framing.MaxVersion.
	upTo uint8
	peer [256]peerVersion
}

// speaks is the highest version this node sends and decodes.
func (v *versions) speaks() uint8 {
	switch {
	case v.v1Only:
		return framing.Version
	case v.upTo >= framing.Version2:
		return min(v.upTo, framing.MaxVersion)
	}
	return framing.MaxVersion
}

type peerVersion struct {
	// heard is the highest version heard from the node since it last
	// started its numbering towards us (0: never heard).
	heard   uint8
	v2At    time.Time // last version-2 or later frame or hello from it
	helloAt time.Time // last hello sent to it
	helloN  uint8     // hellos sent to it since it last restarted (up to helloQuick)
}

// helloWhen is whether and how to answer a frame with a hello.
type helloWhen uint8

const (
	helloNone   helloWhen = iota
	helloUrgent           // with the Ack to a poll, in front of it (the poller keeps the channel for it)
	helloQueued           // behind the data waiting
)

// heard records a frame from h.Src (h is the header as it came from the
// air, kind the kind inside an envelope, payload its payload; toUs that it
// was addressed to this node). It says whether to send the node a hello
// now: it sent us a version-1 unicast ARQ frame (a poll or an Ack), so it
// does not know that we speak version 2, we do not know it speaks 2 either
// (else our next frames, version 2, tell it), and we have not told it
// lately (helloEvery; helloQuickEvery for the first helloQuick). A poll is answered in front of its Ack, inside the
// poller's reservation; an Ack behind our data.
func (v *versions) heard(now time.Time, h framing.Header, kind framing.Kind, payload []byte, toUs bool) helloWhen {
	p := &v.peer[h.Src]
	ver := h.Ver()
	poll := false
	switch {
	case kind == framing.KindHello && len(payload) >= 1 && payload[0] >= framing.Version2:
		p.heard = max(p.heard, min(payload[0], framing.MaxVersion))
		p.v2At = now
		return helloNone
	case ver >= framing.Version2:
		p.heard = max(p.heard, min(ver, framing.MaxVersion))
		p.v2At = now
		return helloNone
	case kind == framing.KindFragment:
		f, _, err := framing.ParseFrag(payload)
		if err != nil {
			return helloNone
		}
		if f.First {
			p.heard = framing.Version // it has restarted, maybe as another build
			p.helloN = 0
		}
		p.heard = max(p.heard, framing.Version)
		poll = f.AckReq
	default:
		p.heard = max(p.heard, framing.Version)
	}
	every := helloEvery
	if p.helloN < helloQuick {
		every = helloQuickEvery
	}
	if v.v1Only || !toUs || !poll && kind != framing.KindAck || v.sendVersion(now, h.Src) >= framing.Version2 ||
		!p.helloAt.IsZero() && now.Sub(p.helloAt) < every {
		return helloNone
	}
	p.helloAt = now
	p.helloN = min(p.helloN+1, helloQuick)
	if poll {
		return helloUrgent
	}
	return helloQueued
}

// sendVersion is the version to send to dst: for a node heard speaking 2
// or more within versionHold, the highest version both speak; else 1
// (always 1 for broadcast).
func (v *versions) sendVersion(now time.Time, dst framing.NodeID) uint8 {
	if v.v1Only || dst == framing.Broadcast {
		return framing.Version
	}
	p := &v.peer[dst]
	if p.heard >= framing.Version2 && now.Sub(p.v2At) < versionHold {
		return min(p.heard, v.speaks())
	}
	return framing.Version
}

// of is the version shown for node n in Stats: the highest heard (0 never).
func (v *versions) of(n framing.NodeID) uint8 { return v.peer[n].heard }

// helloPayloads are a KindHello's payload, by the highest version we
// speak (versions.speaks).
var helloPayloads = [...][]byte{
	framing.Version2: {framing.Version2},
	framing.Version3: {framing.Version3},
	framing.Version4: {framing.Version4},
}

// sendHello queues a KindHello to dst: with the Acks (urgent) or behind the
// data already queued.
func (e *Engine) sendHello(now time.Time, dst framing.NodeID, when helloWhen) {
	if when == helloNone {
		return
	}
	e.stats.HellosSent++
	n := len(e.pend)
	(*arqSink)(e).Transmit(now, arq.Frame{Header: framing.Header{Kind: framing.KindHello, Dst: dst, Src: e.cfg.Node}, Payload: helloPayloads[e.vers.speaks()]})
	if when == helloUrgent && len(e.pend) == n+1 && len(e.acks) < maxAcks {
		e.acks = append(e.acks, e.pend[n])
		e.pend = e.pend[:n]
	}
}

// compress replaces a KindData packet to a version-2 peer by its KindIPHC
// form when that is exact (framing.AppendIPHCVersion: with TCP headers
// compressed too for a version-3 peer, and checksums elided for a
// version-4 peer); the result aliases e.iphcBuf.
func (e *Engine) compress(now time.Time, h framing.Header, payload []byte) (framing.Header, []byte) {
	ver := e.vers.sendVersion(now, h.Dst)
	if h.Kind != framing.KindData || ver < framing.Version2 {
		return h, payload
	}
	c, ok := framing.AppendIPHCVersion(e.iphcBuf[:0], payload, ver)
	if cap(c) > cap(e.iphcBuf) {
		e.iphcBuf = c[:0]
	}
	if !ok {
		return h, payload
	}
	e.stats.Compressed++
	e.stats.CompressSaved += uint64(len(payload) - len(c))
	h.Kind = framing.KindIPHC
	return h, c
}

// frameVersion is the version of a frame to dst: the peer's
// (sendVersion), and at least 2 for a frame that carries compressed
// headers (a retransmission after the peer's version was forgotten still
// says what it carries; compressed TCP headers and elided checksums in it,
// which only a peer known to speak 3, or 4, was given, rebuild in any
// version).
func (e *Engine) frameVersion(now time.Time, h framing.Header, payload []byte) uint8 {
	v := e.vers.sendVersion(now, h.Dst)
	if h.Kind == framing.KindIPHC ||
		h.Kind == framing.KindFragment && len(payload) >= 1 && framing.Kind(payload[0]&0x0F) == framing.KindIPHC {
		return max(v, framing.Version2)
	}
	return v
}
