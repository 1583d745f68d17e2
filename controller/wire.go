package controller

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// decodeReport decodes one wire report: the plain shape sidecars send by
// hand (api.DecodeReportFast), anything else (escapes, a raw body, unknown
// keys, bad JSON) with encoding/json, whose errors name the field.
func decodeReport(b []byte) (api.Report, error) {
	var r api.Report
	if api.DecodeReportFast(b, &r) {
		return r, nil
	}
	r = api.Report{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, jsonError(tsError(b, err))
	}
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		return r, fmt.Errorf("%w: body: unexpected data after the report at byte %d", budget.ErrInvalid, dec.InputOffset())
	}
	return r, nil
}

// tsError names ts when a report failed to decode because of its time:
// time.Time's UnmarshalJSON fails outside encoding/json's error types, so
// its errors would otherwise not say which field they are about. It runs
// only on the error path.
func tsError(b []byte, err error) error {
	var probe struct {
		TS json.RawMessage `json:"ts"`
	}
	if json.Unmarshal(b, &probe) != nil || len(probe.TS) == 0 {
		return err
	}
	var t time.Time
	if tsErr := t.UnmarshalJSON(probe.TS); tsErr != nil {
		return fmt.Errorf("%w: ts: want an RFC 3339 time such as 2026-11-21T20:00:00Z, got %.64s", budget.ErrInvalid, probe.TS)
	}
	return err
}
