package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/bot-bottle/bottlecap/api"
	"github.com/bot-bottle/bottlecap/budget"
)

// statusOf translates a domain error class into an HTTP status, once, at
// this boundary.
func statusOf(err error) int {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge), errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout
	case errors.Is(err, budget.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, budget.ErrDenied):
		return http.StatusForbidden
	case errors.Is(err, budget.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, budget.ErrConflict):
		return http.StatusConflict
	default:
		// The store could not answer (busy, I/O, closing): the caller retries.
		return http.StatusServiceUnavailable
	}
}

func writeErr(w http.ResponseWriter, err error) {
	writeError(w, statusOf(err), err.Error())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, api.Error{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages read better with <slug> than \u003cslug\u003e
	// The status line is sent; a client that hung up cannot be told more.
	_ = enc.Encode(v)
}

// decodeBody reads one JSON object into v, with the body capped at max
// bytes and unknown fields refused so typos are named, not ignored.
func decodeBody(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	body := http.MaxBytesReader(w, r.Body, max)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: body: want exactly one JSON object", budget.ErrInvalid)
	}
	return nil
}

// jsonError names the field or position a JSON decoding error is about.
func jsonError(err error) error {
	var tooLarge *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &tooLarge):
		return fmt.Errorf("body larger than %d bytes: %w", tooLarge.Limit, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("body: not received within the read timeout: %w", err)
	case errors.Is(err, budget.ErrInvalid):
		return err
	case errors.As(err, &typeErr):
		return fmt.Errorf("%w: %s: want %s, got JSON %s", budget.ErrInvalid, typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("%w: body: malformed JSON at byte %d: %v", budget.ErrInvalid, syntaxErr.Offset, err)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: body: empty, want a JSON object", budget.ErrInvalid)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: body: JSON ends before the object does", budget.ErrInvalid)
	}
	return fmt.Errorf("%w: body: %v", budget.ErrInvalid, err)
}
