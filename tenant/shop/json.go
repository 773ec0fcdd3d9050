package shop

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// kv is one member of a JSON object.
type kv struct {
	k string
	v any
}

// object is a JSON object written in the order its members were added: the
// contract's collections are objects whose key order is the display order
// (products_data), and the rest read best in upstream's order.
type object []kv

// MarshalJSON writes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(m.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// money writes a decimal as a two-decimal string.
type money decimal.Decimal

// MarshalJSON writes "x.yy".
func (m money) MarshalJSON() ([]byte, error) {
	return []byte(`"` + decimal.Decimal(m).StringFixed(2) + `"`), nil
}

// timestamp writes a time as the contract's UTC ISO-8601 (§1.3): a "Z"
// suffix, milliseconds only when the fraction is not zero.
type timestamp time.Time

// MarshalJSON writes the time.
func (t timestamp) MarshalJSON() ([]byte, error) {
	return []byte(`"` + formatTime(time.Time(t)) + `"`), nil
}

// formatTime writes t in UTC with a "Z"; a non-zero fraction is truncated
// to milliseconds. "Non-zero" is judged on the microseconds the database stores, before the
// truncation, as Django's encoder does: 12:00:00.000500 is written
// "12:00:00.000Z", not "12:00:00Z".
func formatTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/int(time.Microsecond) == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z")
}

// counter returns the key of the i-th member of a counter-keyed object.
func counter(i int) string { return strconv.Itoa(i) }

// pyInt parses s as Python's int() does for the values the client sends:
// surrounding whitespace, one leading sign, digits with single underscores
// between them. ok is false when Python would raise ValueError or the value
// does not fit in 64 bits.
func pyInt(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return 0, false
	}
	digits := strings.ReplaceAll(s, "_", "")
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}
