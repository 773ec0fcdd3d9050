package api

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/controlplane/signup"
)

// signupPage is one page of GET /v1/signups.
type signupPage struct {
	Signups    []signup.Summary `json:"signups"`
	NextCursor *string          `json:"next_cursor"`
}

// listSignups lists the platform site's sign-ups, newest first; the cursor
// is the last id of the previous page, opaque to clients.
func (s *Server) listSignups(c *fiber.Ctx) error {
	limit, err := intParam(c, "limit", 50, 500)
	if err != nil {
		return err
	}
	status := c.Query("status")
	if status != "" && !signup.ValidStatus(status) {
		return invalid("status", "want one of %s", strings.Join(signup.Statuses, ", "))
	}
	var before int64
	if cur := c.Query("cursor"); cur != "" {
		if before, err = strconv.ParseInt(cur, 10, 64); err != nil || before <= 0 {
			return invalid("cursor", "want the next_cursor of a previous page")
		}
	}
	// One more than the page tells whether another page follows.
	list, err := signup.List(c.UserContext(), s.reg.DB(), status, before, int(limit)+1)
	if err != nil {
		return err
	}
	page := signupPage{Signups: list}
	if len(list) > int(limit) {
		page.Signups = list[:limit]
		next := strconv.FormatInt(page.Signups[limit-1].ID, 10)
		page.NextCursor = &next
	}
	if page.Signups == nil {
		page.Signups = []signup.Summary{}
	}
	return c.JSON(page)
}
