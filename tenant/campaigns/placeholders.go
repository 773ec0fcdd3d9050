package campaigns

import (
	"errors"
	"fmt"
	"html"
	"strings"
)

// Placeholders a campaign body may use, as upstream's str.format templates
// named them; the values are the recipient's. Member campaigns know mb_cd
// and token, prospect campaigns pr_cd and pr_token.
var (
	common = []string{"recipient_first_name", "recipient_last_name", "em_cd", "msg_subject",
		"ENVIRONMENT_DOMAIN", "draft_html", "draft_text", "line_break", "short_line_break", "unsubscribe_url"}
	memberOnly   = []string{"mb_cd", "token"}
	prospectOnly = []string{"pr_cd", "pr_token"}
)

// ErrPlaceholder marks a body that names a placeholder the campaign's type
// does not know, or whose braces do not match.
var ErrPlaceholder = errors.New("placeholder")

// allowed is the set of placeholders of a campaign type.
func allowed(t Type) map[string]bool {
	m := map[string]bool{}
	extra := memberOnly
	if t == Prospect {
		extra = prospectOnly
	}
	for _, list := range [][]string{common, extra} {
		for _, n := range list {
			m[n] = true
		}
	}
	return m
}

// segment is one piece of a parsed body: literal text or a placeholder.
type segment struct {
	text string
	name string // placeholder name; text is empty
}

// parse splits a str.format body into segments: "{{" and "}}" are literal
// braces, "{name}" a placeholder. An unknown name or a lone brace is an
// error naming it.
func parse(body string, known map[string]bool) ([]segment, error) {
	var out []segment
	var lit strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '{' && i+1 < len(body) && body[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(body) && body[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '}':
			return nil, fmt.Errorf("%w: a lone } at offset %d (write }} for a brace)", ErrPlaceholder, i)
		case c == '{':
			end := strings.IndexByte(body[i+1:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%w: a { at offset %d is never closed (write {{ for a brace)", ErrPlaceholder, i)
			}
			name := body[i+1 : i+1+end]
			if !known[name] {
				return nil, fmt.Errorf("%w: unknown placeholder {%s}", ErrPlaceholder, name)
			}
			if lit.Len() > 0 {
				out = append(out, segment{text: lit.String()})
				lit.Reset()
			}
			out = append(out, segment{name: name})
			i += end + 1
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 {
		out = append(out, segment{text: lit.String()})
	}
	return out, nil
}

// Validate checks both bodies of a campaign of type t.
func Validate(t Type, text, htmlBody string) error {
	known := allowed(t)
	if _, err := parse(text, known); err != nil {
		return fmt.Errorf("body_text: %w", err)
	}
	if _, err := parse(htmlBody, known); err != nil {
		return fmt.Errorf("body_html: %w", err)
	}
	return nil
}

// uses reports whether body names placeholder name.
func uses(body, name string) bool { return strings.Contains(body, "{"+name+"}") }

// render fills body with values; in HTML every value is escaped, except
// draft_html, which is markup of our own.
func render(body string, t Type, values map[string]string, asHTML bool) (string, error) {
	segs, err := parse(body, allowed(t))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, s := range segs {
		if s.name == "" {
			b.WriteString(s.text)
			continue
		}
		v := values[s.name]
		if asHTML && s.name != "draft_html" {
			v = html.EscapeString(v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func htmlEscape(s string) string { return html.EscapeString(s) }
