package api

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// openAPIDocument describes every route of the API (OpenAPI 3.1). It is
// written by hand; a test fails when it and the mounted routes differ.
//
//go:embed openapi.json
var openAPIDocument []byte

func (s *Server) openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(openAPIDocument)
}
