// Package docs holds the project's own reference (the Markdown files beside
// this one) and the test that keeps code comments pointing into it: every
// section, quirk, endpoint and mail reference in a Go file must name a
// heading or an explicit anchor here. See README.md for the convention.
package docs
