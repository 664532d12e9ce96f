package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// The wire protocol between Client and Server (docs/simulator.md has it byte
// by byte). Every message is
//
//	length uint16 big-endian | type uint8 | body (length-1 bytes)
//
// where length counts the type byte and the body.

// protoVersion is the stream protocol version a client says in its hello.
// Version 2 added ping and pong (the client's keep-alive); version 3 the
// frame message, so that a burst of several frames goes on air back to back
// (msgFrame). A server still welcomes version 1 and 2 clients, which never
// send frame messages; a client that a version 2 server refuses says hello
// again in version 2 (Client.connect).
const protoVersion = 3

// oldProtoVersion is the version a client falls back to when a server
// refuses protoVersion.
const oldProtoVersion = 2

// minProtoVersion is the oldest stream protocol version a server accepts.
const minProtoVersion = 1

// protoMagic opens the hello body, so that a server spots a stranger at once.
const protoMagic = "SLSM"

type msgType uint8

const (
	msgHello      msgType = 1  // client → server: magic, version, node id
	msgWelcome    msgType = 2  // server → client: version, bit rate, max frame
	msgTransmit   msgType = 3  // client → server: the burst
	msgReceived   msgType = 4  // server → client: a burst heard
	msgCarrierOn  msgType = 5  // server → client
	msgCarrierOff msgType = 6  // server → client
	msgTxDone     msgType = 7  // server → client
	msgError      msgType = 8  // server → client: code, text; the server then closes
	msgPing       msgType = 11 // client → server: keep-alive, empty (stream version 2; UDP)
	msgPong       msgType = 14 // server → client: the answer to a ping, empty (stream version 2)
	msgFrame      msgType = 16 // client → server: a frame of a burst, more follow; a transmit ends the burst (stream version 3)
)

// Error codes carried by msgError.
const (
	codeProtocol   = 1 // malformed or unexpected message
	codeVersion    = 2 // protocol version or magic not supported
	codeNodeInUse  = 3 // another client holds the node id
	codeBadNode    = 4 // node id 0 or 0xFF
	codeSlowReader = 5 // the client fell behind (sent when possible)
)

const (
	helloLen   = len(protoMagic) + 2
	welcomeLen = 1 + 4 + 2
	// maxBody is the largest body (type byte excluded) of any message.
	maxBody = MaxFrame
	// maxMsg is the largest encoded message.
	maxMsg = 2 + 1 + maxBody
)

// errBadMessage reports bytes that are not a valid message.
var errBadMessage = errors.New("sim: bad message")

// message is one decoded message. Data aliases the decoder's input.
type message struct {
	typ      msgType
	version  uint8
	node     NodeID
	bitRate  uint32
	maxFrame uint16
	code     uint8
	data     []byte // transmit, received: the burst; frame: the frame; error: the text
}

// appendMessage appends the encoding of m to dst.
func appendMessage(dst []byte, m *message) []byte {
	var body int
	switch m.typ {
	case msgHello:
		body = helloLen
	case msgWelcome:
		body = welcomeLen
	case msgTransmit, msgReceived, msgFrame:
		body = len(m.data)
	case msgError:
		body = 1 + len(m.data)
	}
	n := 1 + body
	dst = append(dst, byte(n>>8), byte(n), byte(m.typ))
	switch m.typ {
	case msgHello:
		dst = append(dst, protoMagic...)
		dst = append(dst, m.version, m.node)
	case msgWelcome:
		dst = append(dst, m.version, byte(m.bitRate>>24), byte(m.bitRate>>16), byte(m.bitRate>>8), byte(m.bitRate),
			byte(m.maxFrame>>8), byte(m.maxFrame))
	case msgTransmit, msgReceived, msgFrame:
		dst = append(dst, m.data...)
	case msgError:
		dst = append(dst, m.code)
		dst = append(dst, m.data...)
	}
	return dst
}

// appendEmpty appends a message without a body (carrier on/off, tx done).
func appendEmpty(dst []byte, t msgType) []byte { return append(dst, 0, 1, byte(t)) }

// appendData appends a transmit, received or frame message without building a message.
func appendData(dst []byte, t msgType, data []byte) []byte {
	n := 1 + len(data)
	dst = append(dst, byte(n>>8), byte(n), byte(t))
	return append(dst, data...)
}

// parseMessage decodes the message at the start of b and returns it with the
// number of bytes it took. An incomplete message gives io.ErrUnexpectedEOF;
// anything malformed an error wrapping errBadMessage. It never panics.
func parseMessage(b []byte) (message, int, error) {
	if len(b) < 2 {
		return message{}, 0, io.ErrUnexpectedEOF
	}
	n := int(b[0])<<8 | int(b[1])
	if n < 1 || n-1 > maxBody {
		return message{}, 0, fmt.Errorf("%w: length %d", errBadMessage, n)
	}
	if len(b) < 2+n {
		return message{}, 0, io.ErrUnexpectedEOF
	}
	m, err := parseBody(msgType(b[2]), b[3:2+n])
	return m, 2 + n, err
}

// parseBody decodes a message of type t with body body.
func parseBody(t msgType, body []byte) (message, error) {
	m := message{typ: t}
	switch t {
	case msgHello:
		if len(body) != helloLen || string(body[:len(protoMagic)]) != protoMagic {
			return message{}, fmt.Errorf("%w: hello", errBadMessage)
		}
		m.version, m.node = body[4], body[5]
	case msgWelcome:
		if len(body) != welcomeLen {
			return message{}, fmt.Errorf("%w: welcome", errBadMessage)
		}
		m.version = body[0]
		m.bitRate = uint32(body[1])<<24 | uint32(body[2])<<16 | uint32(body[3])<<8 | uint32(body[4])
		m.maxFrame = uint16(body[5])<<8 | uint16(body[6])
	case msgTransmit, msgReceived, msgFrame:
		if len(body) == 0 {
			return message{}, fmt.Errorf("%w: empty burst", errBadMessage)
		}
		m.data = body
	case msgCarrierOn, msgCarrierOff, msgTxDone, msgPing, msgPong:
		if len(body) != 0 {
			return message{}, fmt.Errorf("%w: type %d with a body", errBadMessage, t)
		}
	case msgError:
		if len(body) == 0 {
			return message{}, fmt.Errorf("%w: error without code", errBadMessage)
		}
		m.code, m.data = body[0], body[1:]
	default:
		return message{}, fmt.Errorf("%w: type %d", errBadMessage, t)
	}
	return m, nil
}

// msgReader reads messages from a stream. The data of a message is valid
// until the next call to next.
type msgReader struct {
	r   *bufio.Reader
	buf []byte
}

func newMsgReader(r io.Reader) *msgReader {
	return &msgReader{r: bufio.NewReaderSize(r, maxMsg), buf: make([]byte, maxMsg)}
}

// next reads one message. A stream that ends between messages gives io.EOF;
// one that ends inside a message io.ErrUnexpectedEOF.
func (mr *msgReader) next() (message, error) {
	if _, err := io.ReadFull(mr.r, mr.buf[:2]); err != nil {
		return message{}, err
	}
	n := int(mr.buf[0])<<8 | int(mr.buf[1])
	if n < 1 || n-1 > maxBody {
		return message{}, fmt.Errorf("%w: length %d", errBadMessage, n)
	}
	if _, err := io.ReadFull(mr.r, mr.buf[2:2+n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return message{}, err
	}
	return parseBody(msgType(mr.buf[2]), mr.buf[3:2+n])
}
