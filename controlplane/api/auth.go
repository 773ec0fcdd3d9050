package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/controlplane/registry"
)

type tokenKey struct{}

// authenticate lets a request through only with a live admin token in
// "Authorization: Bearer <token>".
func (s *Server) authenticate(c *fiber.Ctx) error {
	h := c.Get(fiber.HeaderAuthorization)
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return &Error{Status: http.StatusUnauthorized, Code: codeUnauthorized, Message: "missing bearer token: send Authorization: Bearer <token>"}
	}
	info, err := s.reg.VerifyToken(c.UserContext(), token)
	if err != nil {
		return err
	}
	c.Locals(tokenKey{}, info)
	return c.Next()
}

// actor names the caller in the audit log: "token:<id>:<name>".
func actor(c *fiber.Ctx) string {
	info, _ := c.Locals(tokenKey{}).(registry.TokenInfo)
	return "token:" + strconv.FormatInt(info.ID, 10) + ":" + info.Name
}

type tokenCreated struct {
	registry.TokenInfo
	// Token is the secret value, shown in this response only.
	Token string `json:"token"`
}

func (s *Server) createToken(c *fiber.Ctx) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ctx := c.UserContext()
	plain, info, err := s.reg.CreateToken(ctx, req.Name)
	if err != nil {
		return err
	}
	if err := s.reg.Audit(ctx, actor(c), "token.create", 0, nil, info); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(http.StatusCreated).JSON(tokenCreated{TokenInfo: info, Token: plain})
}

func (s *Server) listTokens(c *fiber.Ctx) error {
	tokens, err := s.reg.Tokens(c.UserContext())
	if err != nil {
		return err
	}
	if tokens == nil {
		tokens = []registry.TokenInfo{}
	}
	return c.JSON(fiber.Map{"tokens": tokens})
}

func (s *Server) revokeToken(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil || id <= 0 {
		return invalid("id", "want a token id (a positive integer)")
	}
	ctx := c.UserContext()
	if err := s.reg.RevokeToken(ctx, id); err != nil {
		return err
	}
	if err := s.reg.Audit(ctx, actor(c), "token.revoke", 0, nil, map[string]any{"id": id, "revoked_at": time.Now().UTC()}); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}
