// Package account is the /user/* part of the StartupWebApp API: members and
// their accounts, prospects, log-in and sessions, the e-mail flows
// (verification, password reset, forgotten username, unsubscribe), terms of
// use, chat lead capture and PythonABot sign-ups.
//
// The pure parts are here too: the field validators of the API's §2 (docs/api.md)
// with their exact messages, Django's password rules, password hashing
// (argon2id, and Django's pbkdf2_sha256 for imported members) and
// Django-compatible signing keyed per tenant.
package account
