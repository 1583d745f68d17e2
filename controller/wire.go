package controller

import (
	"bytes"
	"encoding/json"
	"fmt"

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
		return r, jsonError(err)
	}
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		return r, fmt.Errorf("%w: body: unexpected data after the report at byte %d", budget.ErrInvalid, dec.InputOffset())
	}
	return r, nil
}
