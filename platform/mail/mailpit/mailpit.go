// Package mailpit reads the local stack's SMTP sink (Mailpit) over its HTTP
// API, so tests can check what the platform really sent.
package mailpit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Address is a mailbox as Mailpit reports it.
type Address struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// Summary is one entry of a message list.
type Summary struct {
	ID      string    `json:"ID"`
	Subject string    `json:"Subject"`
	From    Address   `json:"From"`
	To      []Address `json:"To"`
	Bcc     []Address `json:"Bcc"`
}

// Message is one message in full.
type Message struct {
	Summary
	Text    string              `json:"Text"`
	HTML    string              `json:"HTML"`
	ReplyTo []Address           `json:"ReplyTo"`
	Headers map[string][]string `json:"-"`
}

// Client talks to one Mailpit.
type Client struct {
	Base string // e.g. http://127.0.0.1:8025
	HTTP *http.Client
}

// New returns a client for base (SWA_MAILPIT_URL).
func New(base string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{Timeout: 10 * time.Second}}
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mailpit %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Search lists every message matching a Mailpit search query, e.g.
// `to:"a@example.com"` or `subject:"abc"`, newest first, a page of 200 at
// a time.
func (c *Client) Search(ctx context.Context, query string) ([]Summary, error) {
	const page = 200
	var all []Summary
	for {
		var out struct {
			Messages []Summary `json:"messages"`
		}
		err := c.get(ctx, fmt.Sprintf("/api/v1/search?start=%d&limit=%d&query=%s", len(all), page, url.QueryEscape(query)), &out)
		if err != nil {
			return nil, err
		}
		all = append(all, out.Messages...)
		if len(out.Messages) < page {
			return all, nil
		}
	}
}

// Total is how many messages match query, read from the search's count
// alone.
func (c *Client) Total(t testing.TB, query string) int {
	t.Helper()
	var out struct {
		Total int `json:"messages_count"`
	}
	if err := c.get(context.Background(), "/api/v1/search?limit=1&query="+url.QueryEscape(query), &out); err != nil {
		t.Fatalf("mailpit search %q: %v", query, err)
	}
	return out.Total
}

// Get reads one message with its headers.
func (c *Client) Get(ctx context.Context, id string) (Message, error) {
	var m Message
	if err := c.get(ctx, "/api/v1/message/"+url.PathEscape(id), &m); err != nil {
		return m, err
	}
	err := c.get(ctx, "/api/v1/message/"+url.PathEscape(id)+"/headers", &m.Headers)
	return m, err
}

// Wait polls until query matches at least n messages (or the deadline
// passes) and returns them in full, failing the test on timeout.
func (c *Client) Wait(t testing.TB, query string, n int, within time.Duration) []Message {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(within)
	for {
		list, err := c.Search(ctx, query)
		if err != nil {
			t.Fatalf("mailpit search %q: %v", query, err)
		}
		if len(list) >= n {
			out := make([]Message, 0, len(list))
			for _, s := range list {
				m, err := c.Get(ctx, s.ID)
				if err != nil {
					t.Fatalf("mailpit get %s: %v", s.ID, err)
				}
				out = append(out, m)
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit: %d message(s) match %q after %s, want %d", len(list), query, within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Count is the number of messages matching query right now.
func (c *Client) Count(t testing.TB, query string) int {
	t.Helper()
	list, err := c.Search(context.Background(), query)
	if err != nil {
		t.Fatalf("mailpit search %q: %v", query, err)
	}
	return len(list)
}
