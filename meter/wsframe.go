package meter

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// WebSocket opcodes and close codes (RFC 6455 sections 5.2 and 7.4.1) the
// meter reads or writes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opClose        = 0x8

	closeGoingAway   = 1001
	closeUnsupported = 1003
	closePolicy      = 1008
	closeTooBig      = 1009
)

// errExtension is a frame using reserved bits: an extension (such as
// permessage-deflate) the meter did not let either side negotiate.
var errExtension = errors.New("websocket frame uses reserved bits (an extension the meter cannot read)")

// frameHeader is one RFC 6455 frame header, with the bytes it was read
// from so that the frame can be forwarded exactly as it came.
type frameHeader struct {
	fin     bool
	rsv     byte
	opcode  byte
	masked  bool
	mask    [4]byte
	length  int64
	raw     []byte
	control bool
}

// readFrameHeader reads the next frame header from r.
func readFrameHeader(r *bufio.Reader) (frameHeader, error) {
	var h frameHeader
	b := make([]byte, 2, 14)
	if _, err := io.ReadFull(r, b); err != nil {
		return h, err
	}
	h.fin, h.rsv, h.opcode = b[0]&0x80 != 0, b[0]&0x70, b[0]&0x0f
	h.masked, h.length = b[1]&0x80 != 0, int64(b[1]&0x7f)
	h.control = h.opcode&0x8 != 0
	ext := map[int64]int{126: 2, 127: 8}[h.length]
	if h.masked {
		ext += 4
	}
	b = b[:2+ext]
	if _, err := io.ReadFull(r, b[2:]); err != nil {
		return h, err
	}
	rest := b[2:]
	switch h.length {
	case 126:
		h.length, rest = int64(binary.BigEndian.Uint16(rest)), rest[2:]
	case 127:
		h.length, rest = int64(binary.BigEndian.Uint64(rest)&(1<<63-1)), rest[8:]
	}
	if h.masked {
		copy(h.mask[:], rest)
	}
	h.raw = b
	if h.rsv != 0 {
		return h, errExtension
	}
	if h.control && (!h.fin || h.length > 125) {
		return h, fmt.Errorf("websocket control frame fragmented or longer than 125 bytes")
	}
	return h, nil
}

// unmask undoes the client's masking of payload bytes that start at offset
// off within the frame.
func (h *frameHeader) unmask(p []byte, off int64) {
	if !h.masked {
		return
	}
	for i := range p {
		p[i] ^= h.mask[(off+int64(i))%4]
	}
}

// serverFrame is one unmasked, unfragmented frame as a server sends it.
func serverFrame(opcode byte, payload []byte) []byte {
	out := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		out = append(out, byte(n))
	case n <= 0xffff:
		out = append(out, 126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, 127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	return append(out, payload...)
}

// clientFrame is one masked, unfragmented frame as a client sends it; the
// meter sends one upstream only to close.
func clientFrame(opcode byte, payload []byte) []byte {
	f := serverFrame(opcode, payload)
	f[1] |= 0x80
	head := len(f) - len(payload)
	var mask [4]byte // a zero mask is valid: the key only has to be unpredictable for browsers' sake
	out := append(append(f[:head:head], mask[:]...), payload...)
	return out
}

// closePayload is a close frame's body: the code and a short reason.
func closePayload(code uint16, reason string) []byte {
	if len(reason) > 120 {
		reason = reason[:120]
	}
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}
