package storefront

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/shopspring/decimal"
)

// Obj is a JSON object of an API answer with its keys in the order the
// API wrote them: the contract's collections are objects keyed "0", "1",
// ... or by id in display order, which a Go map would lose.
type Obj struct {
	keys []string
	m    map[string]any
}

// Item is one key and value of an Obj.
type Item struct {
	Key   string
	Value any
}

// Get returns the value under key, nil when absent (or o is nil).
func (o *Obj) Get(key string) any {
	if o == nil {
		return nil
	}
	return o.m[key]
}

// Items lists the object's entries in order.
func (o *Obj) Items() []Item {
	if o == nil {
		return nil
	}
	out := make([]Item, len(o.keys))
	for i, k := range o.keys {
		out[i] = Item{k, o.m[k]}
	}
	return out
}

// Len is the number of entries.
func (o *Obj) Len() int {
	if o == nil {
		return 0
	}
	return len(o.keys)
}

// decodeObj decodes a JSON object keeping key order; numbers stay
// json.Number so money and ids are never floats.
func decodeObj(b []byte) (*Obj, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	v, err := decodeValue(d)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	o, ok := v.(*Obj)
	if !ok {
		return nil, fmt.Errorf("JSON answer is not an object")
	}
	return o, nil
}

func decodeValue(d *json.Decoder) (any, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &Obj{m: map[string]any{}}
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := decodeValue(d)
				if err != nil {
					return nil, err
				}
				if _, dup := o.m[k]; !dup {
					o.keys = append(o.keys, k)
				}
				o.m[k] = v
			}
			_, err := d.Token()
			return o, err
		case '[':
			var list []any
			for d.More() {
				v, err := decodeValue(d)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := d.Token()
			return list, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return t, nil
	}
}

// get walks a dotted path of object keys ("product_data.title"); nil when
// any step is missing.
func get(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		o, ok := v.(*Obj)
		if !ok || o == nil {
			return nil
		}
		v = o.m[k]
	}
	return v
}

// obj is get for a value that should be an object (nil when it is not).
func obj(v any, path string) *Obj {
	o, _ := get(v, path).(*Obj)
	return o
}

// str is a scalar's text: strings as they are, numbers as written, bools
// as true/false, null as "".
func str(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		if t {
			return "true"
		}
		return "false"
	}
	return fmt.Sprint(v)
}

// truthy is true for JSON true and for the contract's "true" strings.
func truthy(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		return t == "true"
	}
	return false
}

// money formats an amount of the contract (a two-decimal string, or the
// number 0 of an empty total) as dollars: "$3.50".
func money(v any) string {
	d, err := decimal.NewFromString(str(v))
	if err != nil {
		return ""
	}
	neg := d.IsNegative()
	s := d.Abs().StringFixed(2)
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := "$" + b.String() + "." + frac
	if neg {
		out = "-" + out
	}
	return out
}

// number is an integer value of the contract (0 when it is not one).
func number(v any) int64 {
	if n, ok := v.(json.Number); ok {
		i, err := n.Int64()
		if err == nil {
			return i
		}
	}
	return 0
}
