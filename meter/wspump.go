package meter

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/bot-bottle/bottlecap/meter/usage"
)

// fromUpstream passes the server's frames to the client as they arrive,
// unbuffered, and feeds each data message to a usage parser of its own:
// every Responses event is one JSON message, and the terminal ones
// (response.completed, .incomplete, .failed) carry the usage. The client
// lock is held from a message's first frame to its last, so the meter's
// own events never land inside one. It reports whether it ended with the
// client inside a message.
func (s *socketSession) fromUpstream() (midMessage bool) {
	var msg *usage.Parser // the data message being passed, nil between messages
	var head *messageHead
	held := false
	defer func() {
		if held {
			s.clientMu.Unlock()
		}
		midMessage = held
	}()
	for {
		h, err := readFrameHeader(s.upstreamR)
		if errors.Is(err, errExtension) {
			if held {
				s.clientMu.Unlock() // fail writes to the client itself
				held = false
			}
			s.fail(closeUnsupported, err.Error())
			return false
		}
		if err != nil {
			return held
		}
		if !held {
			s.clientMu.Lock()
			held = true
		}
		var sink io.Writer = io.Discard
		if !h.control {
			if msg == nil {
				msg, head = usage.NewParser(s.format, ""), &messageHead{}
			}
			sink = io.MultiWriter(msg, head)
		}
		if _, err := s.client.Write(h.raw); err != nil {
			return held
		}
		if _, err := io.CopyN(io.MultiWriter(s.client, sink), s.upstreamR, h.length); err != nil {
			return held
		}
		if !h.control && h.fin {
			s.noteMessage(msg.Result(), head)
			msg = nil
		}
		if msg == nil {
			s.clientMu.Unlock()
			held = false
		}
	}
}

// noteMessage takes one whole server message: what it says about its
// response; the output a delta event carries, counted against the
// response in flight; or, for an error event, that the oldest
// response.create was refused and will spend nothing.
func (s *socketSession) noteMessage(res usage.Result, head *messageHead) {
	switch {
	case res.ID == "" && head.isError():
		s.dropOldestAsked()
	case res.ID == "":
		s.countDeltas(res.DeltaBytes) // a delta event of the response in flight
	default:
		s.note(res)
	}
}

// fromClient reads the client's messages whole, asks the gate for each
// (every data message a client sends on this socket — response.create, a
// steer — may make the model generate), and forwards the frames exactly as
// they came only when the gate allows; otherwise the client gets an error
// event instead and the upstream never sees the message. Control frames
// pass at once.
func (s *socketSession) fromClient(ctx context.Context) {
	var raw, payload []byte // the frames of the message being read, and its unmasked text
	for {
		h, err := readFrameHeader(s.clientR)
		if errors.Is(err, errExtension) {
			s.fail(closeUnsupported, err.Error())
			return
		}
		if err != nil {
			return
		}
		if h.control {
			if !s.forwardControl(h) {
				return
			}
			continue
		}
		if int64(len(payload))+h.length > maxClientMessage {
			s.fail(closeTooBig, "a client message over 32 MiB cannot be gated")
			return
		}
		start := len(payload)
		payload = append(payload, make([]byte, h.length)...)
		if _, err := io.ReadFull(s.clientR, payload[start:]); err != nil {
			return
		}
		raw = append(append(raw, h.raw...), payload[start:]...) // still masked: forwarded as it came
		h.unmask(payload[start:], 0)
		if !h.fin {
			continue
		}
		if !s.admitMessage(ctx, payload, raw) {
			return
		}
		raw, payload = raw[:0], payload[:0]
	}
}

// forwardControl passes a ping, pong or close frame upstream.
func (s *socketSession) forwardControl(h frameHeader) bool {
	body := make([]byte, h.length)
	if _, err := io.ReadFull(s.clientR, body); err != nil {
		return false
	}
	return s.toUpstream(append(h.raw, body...)) == nil
}

// admitMessage gates one whole client message: forwarded when allowed,
// answered with an error event when refused. The socket stays open after a
// refusal, as after any failed response.create, so a client can carry on
// once the budget is raised. It reports whether the session goes on.
func (s *socketSession) admitMessage(ctx context.Context, payload, raw []byte) bool {
	var ev struct {
		Type     string `json:"type"`
		StreamID string `json:"stream_id"`
	}
	_ = json.Unmarshal(payload, &ev) // to echo a lane id and see a response.create; a malformed message is gated all the same
	ref := s.admission(ctx, ev.Type == "response.create", payload)
	if ref == nil {
		return s.toUpstream(raw) == nil
	}
	if ref.status == 0 {
		return false // the session is ending
	}
	return s.writeEvent(deniedEvent(s.up, ref, ev.StreamID)) == nil
}
