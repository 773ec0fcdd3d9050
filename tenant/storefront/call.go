package storefront

import (
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"
)

// apiStatus is an endpoint answer that is not an application outcome (a
// 4xx of a malformed form, a 503 when the tenant's database is busy): the
// page is answered with that status.
type apiStatus struct {
	status int
	body   string
}

func (e *apiStatus) Error() string { return fmt.Sprintf("endpoint answered %d: %s", e.status, e.body) }

// call runs an API endpoint in-process on the page's own request and
// returns its decoded answer. The endpoint writes its JSON into the
// response as the API route would; the body is read back and cleared so
// the page can be written, while the cookies it set (sessionid,
// csrftoken, an_ct, anonymousclientevent) stay on the response.
func call(c *fiber.Ctx, h fiber.Handler) (*Obj, error) {
	if h == nil {
		return nil, fmt.Errorf("storefront: endpoint not found")
	}
	// The status of an earlier answer (a guard's refusal being turned into
	// a page) must not pass for this endpoint's.
	c.Status(http.StatusOK)
	if err := h(c); err != nil {
		return nil, err
	}
	resp := c.Response()
	status := resp.StatusCode()
	body := append([]byte(nil), resp.Body()...)
	resp.ResetBody()
	c.Status(http.StatusOK)
	if status != http.StatusOK {
		return nil, &apiStatus{status: status, body: string(body)}
	}
	o, err := decodeObj(body)
	if err != nil {
		return nil, fmt.Errorf("storefront: endpoint answer: %w", err)
	}
	return o, nil
}
