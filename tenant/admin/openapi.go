package admin

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// openAPIDocument describes every route of the API (OpenAPI 3.1), written
// by hand; TestOpenAPIMatchesRoutes fails when it and the routes differ.
//
//go:embed openapi.json
var openAPIDocument []byte

func (a *App) apiOpenAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(openAPIDocument)
}
