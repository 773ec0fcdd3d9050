// Package admin is a tenant's back office: its staff (an identity of their
// own, never a member account), their sessions, second factor and API
// tokens, the audit log of every change, the JSON API under /admin/api/v1
// and the server-rendered pages under /admin/.
//
// Staff sessions live in Redis under the swa_staff cookie (Path=/admin,
// HttpOnly, SameSite=Strict), with an idle and an absolute expiry. Every
// unsafe request of a session carries the session's synchronizer token (form
// field csrf_token or header X-CSRF-Token); bearer-token requests need none.
// The member CSRF middleware exempts /admin/ (csrf.Options.ExemptPrefixes),
// and CORS headers are stripped from every /admin answer: the tenant's
// frontend origins are trusted for the member API, not for the back office.
//
// Every error is one JSON shape, {"error": code, "detail": text, "field":
// name}, field present when one input is to blame (see errors.go).
package admin
