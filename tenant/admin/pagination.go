package admin

import (
	"encoding/base64"
	"strconv"

	"github.com/gofiber/fiber/v2"
)

// Lists page by cursor: ?limit= (1-200, default 50) and ?cursor=, the
// opaque next_cursor of the previous page. An answer is
// {"items": [...], "next_cursor": "..." | null}; null means the last page.
const (
	defaultLimit = 50
	maxLimit     = 200
)

type page struct {
	limit int
	after int64 // the last id of the previous page, 0 for the first
}

func pageOf(c *fiber.Ctx) (page, error) {
	p := page{limit: defaultLimit}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return p, invalid("limit", "limit must be a whole number from 1 to 200")
		}
		p.limit = n
	}
	if s := c.Query("cursor"); s != "" {
		id, ok := decodeCursor(s)
		if !ok {
			return p, invalid("cursor", "cursor is not one this API handed out")
		}
		p.after = id
	}
	return p, nil
}

// A cursor is the base64url of "id:<n>": opaque to clients, so the order
// key can change without breaking their loops.
func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("id:" + strconv.FormatInt(id, 10)))
}

func decodeCursor(s string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 4 || string(b[:3]) != "id:" {
		return 0, false
	}
	id, err := strconv.ParseInt(string(b[3:]), 10, 64)
	return id, err == nil && id > 0
}

func listJSON[T any](items []T, next string) fiber.Map {
	if items == nil {
		items = []T{}
	}
	var n any
	if next != "" {
		n = next
	}
	return fiber.Map{"items": items, "next_cursor": n}
}
