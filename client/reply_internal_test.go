package client

import (
	"testing"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// TestDecodeReply: replies the hand-written reader leaves to encoding/json
// (escapes, unknown keys) decode the same, and from a clean value.
func TestDecodeReply(t *testing.T) {
	var reply api.IngestReply
	err := decodeReply([]byte(`{"accepted":2,"duplicates":1,"verdicts":[{"allowed":false,"reason":"budget \"x\" exhausted","state":"cut_off"}],"new_field":1}`), &reply)
	if err != nil || reply.Accepted != 2 || reply.Duplicates != 1 || len(reply.Verdicts) != 1 ||
		reply.Verdicts[0].Reason != `budget "x" exhausted` || reply.Verdicts[0].State != budget.CutOff {
		t.Errorf("got %+v, %v", reply, err)
	}
	var v budget.Verdict
	if err := decodeReply([]byte(`{"allowed":true,"provider":"claude","reason":"\u00e9"}`), &v); err != nil || !v.Allowed || v.Provider != "claude" || v.Reason != "é" {
		t.Errorf("got %+v, %v", v, err)
	}
	if err := decodeReply([]byte(`{"allowed":"yes"}`), &v); err == nil {
		t.Error("a verdict with a string for allowed decoded without error")
	}
}
