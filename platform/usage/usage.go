// Package usage meters what each tenant uses, per UTC hour: requests,
// orders and their revenue, client events accepted and emails sent,
// counted on every data-plane replica, and the size of its database and
// site, sampled by the control plane. The hourly rows are in the registry
// (platform migration 00011): usage_hourly and usage_revenue_hourly.
//
// A Meter counts in memory and adds its counts to the registry every
// Interval and when it closes, through usage_record_flush, in one
// transaction with the flush's (replica, sequence) key: a flush retried
// after a lost acknowledgement adds nothing twice. A replica that is
// killed loses at most the counts it had not flushed yet.
package usage

import "strings"

// Recorder is what the request path and the workers call to count usage.
// Each call is cheap (no I/O); a nil-safe default is Nop.
type Recorder interface {
	// Request counts one request answered for the tenant.
	Request(tenant int64)
	// Order counts one order placed, worth cents in currency (an ISO 4217
	// code; "" when the order carries none).
	Order(tenant int64, currency string, cents int64)
	// ClientEvent counts one client event accepted.
	ClientEvent(tenant int64)
	// EmailSent counts one email the relay accepted.
	EmailSent(tenant int64)
}

// Nop counts nothing: the Recorder of packages whose options name none.
type Nop struct{}

func (Nop) Request(int64)              {}
func (Nop) Order(int64, string, int64) {}
func (Nop) ClientEvent(int64)          {}
func (Nop) EmailSent(int64)            {}

// Or returns r, or Nop when r is nil.
func Or(r Recorder) Recorder {
	if r == nil {
		return Nop{}
	}
	return r
}

// currencyOf normalizes an order's currency: three ASCII letters, lower
// case as Stripe writes them; anything else counts as none ("").
func currencyOf(s string) string {
	if len(s) != 3 {
		return ""
	}
	s = strings.ToLower(s)
	for i := 0; i < 3; i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return ""
		}
	}
	return s
}
