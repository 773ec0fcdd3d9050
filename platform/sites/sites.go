// Package sites hosts tenants' own frontends: a static site bundle (a
// .tar.gz) deployed as a numbered, immutable version whose files are
// content-addressed blobs (SHA-256, per tenant, so a file unchanged across
// versions is stored once), kept in the platform database or in S3 behind
// the Blobs interface.
//
// Deploys are atomic: a version's files and blobs are all recorded and
// stored before one transaction marks it ready and points the tenant's site
// at it, and the data plane only follows that pointer, through the
// directory (directory.Tenant.Site), which NOTIFY keeps current on every
// replica. Rollback moves the pointer back; the newest versions are kept
// (Options.Retain) and blobs no version names any more are deleted.
//
// Handler serves the site on the data plane as the original frontend's
// CDN did: files as they are, extensionless pages as <path>.html, a
// folder's index.html, else the site's error.html with 404; ETags and 304,
// one byte range per request (206, 416, If-Range by ETag; several ranges
// get the whole file), cache lifetimes by kind of file, and gzip or brotli
// precompressed at deploy time.
package sites

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sum is the SHA-256 of a blob's bytes: its name in every backend.
type Sum [32]byte

// Hex is the sum in lower-case hexadecimal.
func (s Sum) Hex() string { return hex.EncodeToString(s[:]) }

func sumOf(b []byte) Sum { return sha256.Sum256(b) }

// Modes of a site.
const (
	// ModeReplace serves the site on every host of the tenant, in place of
	// the built-in storefront.
	ModeReplace = "replace"
	// ModeDomain serves the site on one of the tenant's domains only; its
	// other hosts keep the storefront, and the site's origin is trusted for
	// CORS.
	ModeDomain = "domain"
)

// APIPrefixes are the first path segments the StartupWebApp API answers:
// never served from a site, and refused in a bundle, whose files there could
// never be reached.
var APIPrefixes = []string{"user", "order", "clientevent", "admin"}

func isAPIPath(p string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	for _, a := range APIPrefixes {
		if first == a {
			return true
		}
	}
	return false
}

// Limits bound a bundle. The zero value of a field means its default.
type Limits struct {
	BundleBytes int64 // the compressed upload (default 32 MiB)
	TotalBytes  int64 // every file, uncompressed (default 128 MiB)
	FileBytes   int64 // one file (default 16 MiB)
	Files       int   // number of files (default 5000)
}

// Defaults of Limits.
const (
	DefaultBundleBytes = 32 << 20
	DefaultTotalBytes  = 128 << 20
	DefaultFileBytes   = 16 << 20
	DefaultFiles       = 5000
)

func (l Limits) withDefaults() Limits {
	if l.BundleBytes <= 0 {
		l.BundleBytes = DefaultBundleBytes
	}
	if l.TotalBytes <= 0 {
		l.TotalBytes = DefaultTotalBytes
	}
	if l.FileBytes <= 0 {
		l.FileBytes = DefaultFileBytes
	}
	if l.Files <= 0 {
		l.Files = DefaultFiles
	}
	return l
}

// BundleError is a bundle refused: Entry names the offending archive
// entry (empty when the bundle as a whole is at fault) and Limit the limit
// it passed (empty when it is malformed rather than too big). The API
// answers 413 for a passed limit and 400 otherwise.
type BundleError struct {
	Entry   string
	Limit   string
	Message string
}

func (e *BundleError) Error() string {
	if e.Entry != "" {
		return fmt.Sprintf("bundle entry %q: %s", e.Entry, e.Message)
	}
	return "bundle: " + e.Message
}

// Errors of the Store. ErrNotFound: no such version or tenant site;
// ErrConflict: the change is not allowed as things are (the current version
// deleted); ErrInvalid wraps bad arguments.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
