package daemon

import (
	"bytes"
	"fmt"

	"github.com/bot-bottle/bottlecap/controller"
	"github.com/bot-bottle/bottlecap/meter/usage"
)

// ParseRaw normalises a raw report body (POST /v1/usage with "raw") with
// the metering parsers, so the daemon and the meter count alike.
func ParseRaw(format string, body []byte) (controller.RawUsage, error) {
	f, err := usage.ParseFormat(format)
	if err != nil {
		return controller.RawUsage{}, fmt.Errorf("format: %w", err)
	}
	res, err := usage.ParseAll(f, "", bytes.NewReader(body))
	if err != nil {
		return controller.RawUsage{}, err
	}
	return controller.RawUsage{Usage: res.Usage, Complete: res.Complete, Model: res.Model, ID: res.ID}, nil
}
