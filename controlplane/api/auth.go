package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/controlplane/registry"
)

type tokenKey struct{}

// authenticate lets a request through only with a live admin token in
// "Authorization: Bearer <token>". A client with too many wrong tokens in
// the current window gets 429 before its token is looked at.
func (s *Server) authenticate(c *fiber.Ctx) error {
	client := s.clientAddr(c)
	tk, wait, ok := s.failures.reserve(throttleKey(client))
	if !ok {
		secs := int64((wait + time.Second - 1) / time.Second)
		c.Set(fiber.HeaderRetryAfter, strconv.FormatInt(max(secs, 1), 10))
		return &Error{Status: http.StatusTooManyRequests, Code: codeRateLimited,
			Message: "too many failed authentications from this address; try again after Retry-After seconds"}
	}
	h := c.Get(fiber.HeaderAuthorization)
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		// No token was tried: nothing to count.
		s.failures.release(tk)
		return &Error{Status: http.StatusUnauthorized, Code: codeUnauthorized, Message: "missing bearer token: send Authorization: Bearer <token>"}
	}
	info, err := s.verifyToken(c.UserContext(), token)
	if errors.Is(err, registry.ErrUnauthorized) {
		s.failures.fail(tk)
		return err
	}
	s.failures.release(tk)
	if err != nil {
		return err
	}
	c.Locals(tokenKey{}, info)
	return c.Next()
}

// verifyToken returns the live token whose value is plaintext, or
// registry.ErrUnauthorized. It writes the token's last_used_at at most once
// per lastUsedInterval: a write per request made every admin call, reads
// included, an UPDATE of the token's row in the platform database.
func (s *Server) verifyToken(ctx context.Context, plaintext string) (registry.TokenInfo, error) {
	h := sha256.Sum256([]byte(plaintext))
	if s.usage.claim(h) {
		info, err := s.reg.VerifyToken(ctx, plaintext) // looks up and stamps last_used_at
		if err != nil {
			s.usage.unclaim(h)
		}
		return info, err
	}
	return s.reg.LookupToken(ctx, plaintext)
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
