package sites

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/singleflight"

	"github.com/startupwebapp/platform/platform/server"
)

// HandlerOptions configures a Handler.
type HandlerOptions struct {
	// DB reads the site tables (the data plane's SELECT-only registry
	// connection). Required.
	DB DB
	// Blobs is where the files' bytes are (default: the database backend on
	// DB).
	Blobs Blobs
	// CacheBytes bounds the file bytes each replica keeps in memory
	// (default 64 MiB); files over an eighth of it are always read afresh.
	CacheBytes int64
	Log        *slog.Logger
}

// DefaultCacheBytes is the default HandlerOptions.CacheBytes.
const DefaultCacheBytes = 64 << 20

// manifestCacheCost bounds the kept manifests, counted in files.
const manifestCacheCost = 200_000

// Handler serves tenants' sites on the data plane. Mount it after the API
// apps and before the built-in storefront: it answers GET and HEAD on a host
// where the tenant serves a site (directory.Tenant.SiteOn), except under
// the API's prefixes, and hands every other request on.
type Handler struct {
	db    DB
	blobs Blobs
	log   *slog.Logger

	// Versions are immutable once ready, and blobs are named by their
	// content, so neither cache can ever serve a stale file.
	manifests *lru[int64, *manifest]
	files     *lru[blobKey, []byte]
	loads     singleflight.Group
}

type blobKey struct {
	tenant int64
	sum    Sum
}

// NewHandler returns a Handler.
func NewHandler(o HandlerOptions) *Handler {
	if o.Blobs == nil {
		o.Blobs = NewDBBlobs(o.DB)
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Handler{
		db: o.DB, blobs: o.Blobs, log: o.Log,
		manifests: newLRU[int64, *manifest](manifestCacheCost * 8),
		files:     newLRU[blobKey, []byte](o.CacheBytes),
	}
}

// Route is the route name of every answer of a site in the data plane's
// access log and HTTP metrics.
const Route = "site"

// Mount registers the handler for every path (server.App).
func (h *Handler) Mount(r fiber.Router) { r.Use(h.Serve) }

// entry is one file of a version as the handler serves it.
type entry struct {
	contentType  string
	sum          Sum
	gzip, br     *Sum
	etag         string // of the identity encoding; -gz / -br added for the others
	cacheControl string
}

// manifest is one ready version's files by path.
type manifest struct {
	tenant int64
	files  map[string]*entry
}

// Serve answers a request from the tenant's site, or calls the next
// handler when no site applies.
func (h *Handler) Serve(c *fiber.Ctx) error {
	if m := c.Method(); m != fiber.MethodGet && m != fiber.MethodHead {
		return c.Next()
	}
	t := server.Tenant(c)
	if t == nil {
		return c.Next()
	}
	version, ok := t.SiteOn(strings.TrimSpace(c.Hostname()))
	if !ok {
		return c.Next()
	}
	// The URI's path, percent-decoded and with dot segments resolved.
	p := string(c.Request().URI().Path())
	if isAPIPath(p) {
		return c.Next()
	}
	// Every answer from here on is the site's: one route in the access log
	// and the metrics, not "unmatched" (the handler is a Use).
	server.SetRoute(c, Route)
	m, err := h.manifest(c.UserContext(), t.ID, version)
	if err != nil {
		return err
	}
	f, redirect := m.resolve(p)
	if redirect {
		target := (&url.URL{Path: p + "/"}).EscapedPath()
		if q := c.Request().URI().QueryString(); len(q) > 0 {
			target += "?" + string(q)
		}
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return c.Redirect(target, http.StatusMovedPermanently)
	}
	status := http.StatusOK
	if f == nil {
		if f = m.files["error.html"]; f == nil {
			c.Set(fiber.HeaderCacheControl, "no-cache")
			c.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
			return c.Status(http.StatusNotFound).SendString("404 page not found\n")
		}
		status = http.StatusNotFound
	}
	return h.send(c, m.tenant, f, status)
}

// resolve finds the file a path names, as the original frontend's CDN did:
// the file itself, <path>.html for a name without extension, a folder's
// index.html (a redirect to the path with a slash first, so its relative
// links resolve), or nil.
func (m *manifest) resolve(p string) (f *entry, redirect bool) {
	rel := strings.TrimPrefix(p, "/")
	if rel == "" || strings.HasSuffix(rel, "/") {
		return m.files[rel+"index.html"], false
	}
	if f := m.files[rel]; f != nil {
		return f, false
	}
	if path.Ext(rel) == "" {
		if f := m.files[rel+".html"]; f != nil {
			return f, false
		}
	}
	if m.files[rel+"/index.html"] != nil {
		return nil, true
	}
	return nil, false
}

// send writes one file with its validators and cache lifetime, in the
// best encoding the client accepts.
func (h *Handler) send(c *fiber.Ctx, tenantID int64, f *entry, status int) error {
	c.Vary(fiber.HeaderAcceptEncoding)
	c.Set(fiber.HeaderContentType, f.contentType)
	if status != http.StatusOK {
		c.Set(fiber.HeaderCacheControl, "no-cache")
	} else {
		c.Set(fiber.HeaderCacheControl, f.cacheControl)
	}
	sum, etag, coding := f.sum, f.etag, ""
	ae := c.Get(fiber.HeaderAcceptEncoding)
	switch {
	case f.br != nil && accepts(ae, "br"):
		sum, etag, coding = *f.br, f.etag[:len(f.etag)-1]+`-br"`, "br"
	case f.gzip != nil && accepts(ae, "gzip"):
		sum, etag, coding = *f.gzip, f.etag[:len(f.etag)-1]+`-gz"`, "gzip"
	}
	c.Set(fiber.HeaderETag, etag)
	if status == http.StatusOK && noneMatch(c.Get(fiber.HeaderIfNoneMatch), f.etag) {
		return c.SendStatus(http.StatusNotModified)
	}
	data, err := h.blob(c.UserContext(), tenantID, sum)
	if errors.Is(err, ErrBlobNotFound) {
		// A version pruned while this replica had not yet followed the
		// switch away from it: the next directory refresh fixes it.
		c.Set(fiber.HeaderRetryAfter, "1")
		c.Set(fiber.HeaderCacheControl, "no-store")
		return server.Fail(c, http.StatusServiceUnavailable, "service-unavailable", "the site is being updated; retry shortly")
	}
	if err != nil {
		return err
	}
	if status == http.StatusOK {
		c.Set(fiber.HeaderAcceptRanges, "bytes")
		if rng := c.Get(fiber.HeaderRange); rng != "" && ifRange(c.Get(fiber.HeaderIfRange), etag) {
			start, end, res := byteRange(rng, int64(len(data)))
			switch res {
			case rangeUnsatisfiable:
				c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes */%d", len(data)))
				c.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
				return c.Status(http.StatusRequestedRangeNotSatisfiable).Send(nil)
			case rangeOne:
				if coding != "" {
					c.Set(fiber.HeaderContentEncoding, coding)
				}
				c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", start, end, len(data)))
				return c.Status(http.StatusPartialContent).Send(data[start : end+1])
			}
		}
	}
	if coding != "" {
		c.Set(fiber.HeaderContentEncoding, coding)
	}
	c.Status(status)
	return c.Send(data)
}

// ifRange reports whether a Range header applies under an If-Range header:
// none, or exactly the ETag of the representation sent (a strong
// comparison; a date never matches, for a site file has no
// Last-Modified). When it does not, the whole file is sent.
func ifRange(header, etag string) bool {
	header = strings.TrimSpace(header)
	return header == "" || header == etag
}

// Results of byteRange.
const (
	rangeWhole         = iota // malformed, not bytes, or several ranges: send the whole file
	rangeOne                  // one satisfiable range
	rangeUnsatisfiable        // one range that starts past the end (416)
)

// byteRange reads a Range header for a file of size bytes: one range
// (first-last, first-, or -suffix) clipped to the file, with its
// inclusive ends. Several ranges are answered with the whole file, which
// HTTP allows, rather than a multipart body.
func byteRange(header string, size int64) (start, end int64, result int) {
	unit, spec, ok := strings.Cut(header, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") || strings.Contains(spec, ",") {
		return 0, 0, rangeWhole
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, rangeWhole
	}
	if first == "" { // the last n bytes
		n, err := parseDigits(last)
		if err != nil {
			return 0, 0, rangeWhole
		}
		if n == 0 || size == 0 {
			return 0, 0, rangeUnsatisfiable
		}
		return max(size-n, 0), size - 1, rangeOne
	}
	start, err := parseDigits(first)
	if err != nil {
		return 0, 0, rangeWhole
	}
	end = size - 1
	if last != "" {
		if end, err = parseDigits(last); err != nil || end < start {
			return 0, 0, rangeWhole
		}
		end = min(end, size-1)
	}
	if start >= size {
		return 0, 0, rangeUnsatisfiable
	}
	return start, end, rangeOne
}

// noneMatch reports whether an If-None-Match header names the file (any of
// its encodings: they share one content), or is "*".
func noneMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	base := strings.Trim(etag, `"`)
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" {
			return true
		}
		tag = strings.Trim(strings.TrimPrefix(tag, "W/"), `"`)
		tag = strings.TrimSuffix(strings.TrimSuffix(tag, "-br"), "-gz")
		if tag == base {
			return true
		}
	}
	return false
}

// parseDigits reads a decimal of digits only (no sign, no space).
func parseDigits(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}

// accepts reports whether an Accept-Encoding header accepts coding: named
// with a q above 0, or not named and covered by a "*" above 0.
func accepts(header, coding string) bool {
	star := false
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != coding && name != "*" {
			continue
		}
		ok := qAbove0(params)
		if name == coding {
			return ok
		}
		star = ok
	}
	return star
}

func qAbove0(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q > 0
		}
	}
	return true
}

// manifest returns a ready version's file list, from memory when it can.
func (h *Handler) manifest(ctx context.Context, tenantID, version int64) (*manifest, error) {
	if m, ok := h.manifests.get(version); ok && m.tenant == tenantID {
		return m, nil
	}
	v, err, _ := h.loads.Do("m"+strconv.FormatInt(version, 10), func() (any, error) {
		m, err := loadManifest(ctx, h.db, version)
		if err != nil {
			return nil, err
		}
		h.manifests.add(version, m, int64(len(m.files)))
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	m := v.(*manifest)
	if m.tenant != tenantID {
		return nil, fmt.Errorf("site version %d is not tenant %d's", version, tenantID)
	}
	return m, nil
}

func loadManifest(ctx context.Context, db DB, version int64) (*manifest, error) {
	rows, err := db.Query(ctx, `SELECT f.tenant_id, f.path, f.content_type, f.sha256, f.gzip_sha256, f.br_sha256
		FROM site_files f JOIN site_versions v ON v.id = f.version_id
		WHERE f.version_id = $1 AND v.status = 'ready'`, version)
	if err != nil {
		return nil, fmt.Errorf("site version %d: %w", version, err)
	}
	m := &manifest{files: map[string]*entry{}}
	var (
		tenant       int64
		p, ct        string
		sum, gz, brs []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&tenant, &p, &ct, &sum, &gz, &brs}, func() error {
		e := &entry{contentType: ct}
		copy(e.sum[:], sum)
		if gz != nil {
			e.gzip = new(Sum)
			copy(e.gzip[:], gz)
		}
		if brs != nil {
			e.br = new(Sum)
			copy(e.br[:], brs)
		}
		e.etag = `"` + e.sum.Hex()[:32] + `"`
		e.cacheControl = cacheControl(p, ct)
		m.tenant = tenant
		m.files[p] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("site version %d: %w", version, err)
	}
	if len(m.files) == 0 {
		return nil, fmt.Errorf("site version %d: no files, or not ready", version)
	}
	return m, nil
}

// blob returns a file's bytes, from memory when it can.
func (h *Handler) blob(ctx context.Context, tenantID int64, sum Sum) ([]byte, error) {
	k := blobKey{tenantID, sum}
	if b, ok := h.files.get(k); ok {
		return b, nil
	}
	v, err, _ := h.loads.Do(strconv.FormatInt(tenantID, 10)+"/"+sum.Hex(), func() (any, error) {
		b, err := h.blobs.Get(ctx, tenantID, sum)
		if err != nil {
			return nil, err
		}
		h.files.add(k, b, int64(len(b)))
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// Cache lifetimes: HTML is revalidated on every visit (so a deploy shows
// at once), a file whose name carries a content hash never changes, and
// anything else may be a little stale.
const (
	cacheHTML      = "no-cache"
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheModerate  = "public, max-age=3600"
)

func cacheControl(p, ct string) string {
	switch {
	case strings.HasPrefix(ct, "text/html"):
		return cacheHTML
	case fingerprinted(p):
		return cacheImmutable
	}
	return cacheModerate
}

// fingerprinted reports whether a file name carries a content hash: a
// segment between '.', '-' or '_' (the extension aside) of 8 or more hex
// digits with at least one digit and one letter (app.3f2a9c1e.js), or of
// exactly 8 letters and digits in both cases with a digit, as bundlers
// write them (index-BQ3x8a1z.js).
func fingerprinted(p string) bool {
	name := path.Base(p)
	name = strings.TrimSuffix(name, path.Ext(name))
	for _, seg := range strings.FieldsFunc(name, func(r rune) bool { return r == '.' || r == '-' || r == '_' }) {
		if hashLike(seg) {
			return true
		}
	}
	return false
}

func hashLike(s string) bool {
	var digit, lower, upper, other, hexLetter bool
	for _, r := range s {
		switch {
		case '0' <= r && r <= '9':
			digit = true
		case 'a' <= r && r <= 'f':
			lower, hexLetter = true, true
		case 'g' <= r && r <= 'z':
			lower, other = true, true
		case 'A' <= r && r <= 'Z':
			upper = true
		default:
			return false
		}
	}
	if len(s) >= 8 && len(s) <= 64 && !upper && !other && digit && hexLetter {
		return true
	}
	return len(s) == 8 && digit && lower && upper
}
