package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/controlplane/registry"
)

// Error codes of the JSON error body, one per kind of failure.
const (
	codeInvalid      = "invalid"
	codeNotFound     = "not_found"
	codeConflict     = "conflict"
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codePlanLimit    = "plan_limit"
	codeRateLimited  = "rate_limited"
	codeUnavailable  = "unavailable"
	codeInternal     = "internal"
)

// Error is an API failure with its HTTP status; handlers return it (or a
// registry error, which handleError maps) and handleError writes it.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func invalid(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: codeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: codeConflict, Message: fmt.Sprintf(format, args...)}
}

// classify maps any error to the one the client sees. This is the only place
// where domain errors become HTTP statuses.
func classify(err error) *Error {
	var (
		apiErr   *Error
		invErr   *registry.InvalidError
		planErr  *registry.PlanLimitError
		fiberErr *fiber.Error
	)
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &planErr):
		return &Error{Status: http.StatusForbidden, Code: codePlanLimit, Message: planErr.Error()}
	case errors.As(err, &invErr):
		return &Error{Status: http.StatusBadRequest, Code: codeInvalid, Field: invErr.Field, Message: invErr.Message}
	case errors.Is(err, registry.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: codeNotFound, Message: err.Error()}
	case errors.Is(err, registry.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: codeConflict, Message: err.Error()}
	case errors.Is(err, registry.ErrUnauthorized):
		return &Error{Status: http.StatusUnauthorized, Code: codeUnauthorized, Message: "invalid or revoked token"}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "timed out; try again"}
	case errors.As(err, &fiberErr):
		return fromFiber(fiberErr)
	}
	return &Error{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error"}
}

func fromFiber(e *fiber.Error) *Error {
	switch e.Code {
	case http.StatusNotFound:
		return &Error{Status: e.Code, Code: codeNotFound, Message: "no such route"}
	case http.StatusMethodNotAllowed:
		return &Error{Status: e.Code, Code: codeInvalid, Message: "method not allowed on this route"}
	case http.StatusRequestEntityTooLarge:
		return &Error{Status: e.Code, Code: codeInvalid, Message: "request body too large"}
	case http.StatusUnauthorized:
		return &Error{Status: e.Code, Code: codeUnauthorized, Message: "unauthorized"}
	case http.StatusForbidden:
		return &Error{Status: e.Code, Code: codeForbidden, Message: "forbidden"}
	case http.StatusTooManyRequests:
		return &Error{Status: e.Code, Code: codeRateLimited, Message: "too many requests; try again later"}
	case http.StatusServiceUnavailable:
		return &Error{Status: e.Code, Code: codeUnavailable, Message: "unavailable; try again"}
	}
	if e.Code >= 400 && e.Code < 500 {
		return &Error{Status: e.Code, Code: codeInvalid, Message: http.StatusText(e.Code)}
	}
	return &Error{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error"}
}

// handleError writes err as the JSON error body. Internal detail goes to the
// log with the request id, never to the client.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if errors.As(err, &fe) && fe.Code == http.StatusRequestEntityTooLarge &&
		isSiteDeploy(c.Request().Header.Method(), c.Request().URI().Path()) {
		err = s.bundleTooLarge()
	}
	e := classify(err)
	rid := requestID(c)
	if e.Status >= 500 {
		s.log.Error("request failed", "request_id", rid, "method", c.Method(), "route", c.Route().Path, "err", err)
		if e.Code == codeInternal {
			e = &Error{Status: e.Status, Code: e.Code, Message: "internal error (request id " + rid + ")"}
		}
	}
	if e.Status == http.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="swa-controlplane"`)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(e.Status).JSON(errorBody{Error: errorDetail{Code: e.Code, Message: e.Message, Field: e.Field}})
}

var unknownFieldRE = regexp.MustCompile(`^json: unknown field "([^"]*)"$`)

// decodeJSON reads the request body into v, rejecting unknown fields and
// trailing data. Its errors name the field and never quote the body, which
// may hold secret values.
func decodeJSON(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("", "want a JSON object in the request body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			return invalid("", "want exactly one JSON object in the request body")
		}
		return nil
	}
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return invalid("", "want a JSON object in the request body")
		}
		return invalid(field, "wrong type: want %s", jsonType(typeErr.Type.Kind().String()))
	case errors.As(err, &syntaxErr):
		return invalid("", "malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "malformed JSON: unexpected end")
	}
	if m := unknownFieldRE.FindStringSubmatch(err.Error()); m != nil {
		return invalid(m[1], "unknown field")
	}
	return invalid("", "malformed JSON")
}

func jsonType(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"), strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "true or false"
	case kind == "slice", kind == "array":
		return "an array"
	case kind == "map", kind == "struct":
		return "an object"
	}
	return kind
}

// dsnPasswordRE and kvPasswordRE find credentials in connection strings that
// a driver error might quote.
var (
	dsnPasswordRE = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@`)
	kvPasswordRE  = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)
)

// publicMessage is the text an operation records when it fails: the error
// with any credential a driver might quote removed, and bounded in length.
func publicMessage(err error) string {
	if errors.Is(err, context.Canceled) {
		return "interrupted: the control plane stopped while it ran; retry the tenant"
	}
	msg := err.Error()
	msg = dsnPasswordRE.ReplaceAllString(msg, "$1:***@")
	msg = kvPasswordRE.ReplaceAllString(msg, "$1***")
	if len(msg) > 1000 {
		msg = msg[:1000] + "..."
	}
	return msg
}
