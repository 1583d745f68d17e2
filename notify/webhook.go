package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/bot-bottle/bottlecap/budget"
)

// SignatureHeader carries a signed webhook's signature: "sha256=" and the
// hex HMAC-SHA256 of the body under the sink's secret.
const SignatureHeader = "X-Bottlecap-Signature"

// newClient is the webhooks' client: no redirects (a 3xx is an answer
// the sink's settings must fix, and a POST that follows one may become a
// GET), the per-attempt timeout from each attempt's context.
func newClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// post delivers a notice to a webhook: a 2xx answer is taken.
func (n *Notifier) post(ctx context.Context, conf budget.NotifySink, d budget.Delivery) error {
	body, err := webhookBody(conf, d.Body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, conf.Webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bottlecap/"+n.cfg.Version)
	req.Header.Set("X-Bottlecap-Event", string(d.Kind))
	if conf.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(conf.Secret, body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("post to %s: %w", req.URL.Host, withoutURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", req.URL.Host, resp.Status)
	}
	return nil
}

// withoutURL drops the URL from a client error: a webhook's URL may hold
// its credentials (Slack's do), which must not reach logs or the ledger.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Sign is the value of SignatureHeader for body under secret, which a
// receiver computes again to check that the body came from bottlecap.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// webhookBody is what a webhook is sent: the notice as queued, or, for
// format slack, {"text": …} with the notice's line.
func webhookBody(conf budget.NotifySink, notice []byte) ([]byte, error) {
	if conf.Format != budget.FormatSlack {
		return notice, nil
	}
	var x budget.Notice
	if err := json.Unmarshal(notice, &x); err != nil {
		return nil, fmt.Errorf("queued notice unreadable: %w", err)
	}
	text := "bottlecap: " + x.Text
	if x.Host != "" {
		text = "bottlecap on " + x.Host + ": " + x.Text
	}
	return json.Marshal(map[string]string{"text": text})
}
