package admin

import (
	"errors"

	"github.com/gofiber/fiber/v2"
)

// apiError is a client error: the status and the JSON body
// {"error": code, "detail": text, "field": name}. Field names the input
// (as the request spells it) when one is to blame. Anything else a handler
// returns is the server's (500 or 503, detail logged only).
type apiError struct {
	Status int    `json:"-"`
	Code   string `json:"error"`
	Detail string `json:"detail"`
	Field  string `json:"field,omitempty"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Detail }

func invalid(field, detail string) *apiError {
	return &apiError{Status: fiber.StatusBadRequest, Code: "invalid", Detail: detail, Field: field}
}

func required(field string) *apiError {
	return &apiError{Status: fiber.StatusBadRequest, Code: "required", Detail: field + " is required", Field: field}
}

var (
	errUnauthenticated = &apiError{Status: fiber.StatusUnauthorized, Code: "unauthenticated", Detail: "sign in first"}
	errForbidden       = &apiError{Status: fiber.StatusForbidden, Code: "forbidden", Detail: "your role does not allow this"}
	errNotFound        = &apiError{Status: fiber.StatusNotFound, Code: "not-found", Detail: "not found"}
	errCSRF            = &apiError{Status: fiber.StatusForbidden, Code: "csrf-failed", Detail: "the request's CSRF token is missing or wrong"}
	errOrigin          = &apiError{Status: fiber.StatusForbidden, Code: "csrf-failed", Detail: "the request comes from another origin"}
	// errSignIn is the one answer to a refused sign-in: unknown address,
	// wrong password, deactivated or locked account alike.
	errSignIn = &apiError{Status: fiber.StatusUnauthorized, Code: "sign-in-failed",
		Detail: "the address or password is wrong, or the account is locked for a while after too many failures"}
	errTOTP       = &apiError{Status: fiber.StatusUnauthorized, Code: "code-invalid", Detail: "the code is wrong or was already used", Field: "code"}
	errLinkToken  = &apiError{Status: fiber.StatusBadRequest, Code: "token-invalid", Detail: "the link is wrong, expired or already used", Field: "token"}
	errBadPass    = &apiError{Status: fiber.StatusBadRequest, Code: "password-wrong", Detail: "the current password is wrong", Field: "current_password"}
	errSessionOnl = &apiError{Status: fiber.StatusForbidden, Code: "session-required", Detail: "sign in with a password for this; API tokens cannot do it"}
)

// asAPIError reports whether err is a client error.
func asAPIError(err error) (*apiError, bool) {
	var e *apiError
	ok := errors.As(err, &e)
	return e, ok
}

// ClientError reports whether err is one the caller should show its user
// (a refused password, a bad address): the field to blame and the message.
// Callers outside the back office (the control plane creating a first
// owner) map it to their own error shape.
func ClientError(err error) (field, detail string, ok bool) {
	e, ok := asAPIError(err)
	if !ok {
		return "", "", false
	}
	return e.Field, e.Detail, true
}
