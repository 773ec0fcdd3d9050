package api

import (
	"bytes"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/startupwebapp/platform/platform/sites"
)

// Defaults of the site options.
const (
	// DefaultSiteDeployTimeout is the deadline of a site deploy, which runs
	// while the request waits: reading, hashing, compressing and storing a
	// bundle of up to sites.DefaultBundleBytes.
	DefaultSiteDeployTimeout = 3 * time.Minute
	// DefaultSiteDeploys is how many site deploys run at once; each holds
	// its bundle in memory.
	DefaultSiteDeploys = 2
)

// siteDeployRE matches the path of a site deploy, the one route whose body
// may be larger than Options.BodyLimit (up to the bundle limit) and whose
// deadline is Options.SiteDeployTimeout.
var siteDeployRE = regexp.MustCompile(`^/v1/tenants/[^/]+/site/versions/?$`)

func isSiteDeploy(method, path []byte) bool {
	return bytes.Equal(method, []byte(fiber.MethodPost)) && siteDeployRE.Match(path)
}

// requestConfig gives a site deploy its larger body limit and longer read
// deadline as soon as its header is read; every other request keeps the
// API's body limit, refused on its Content-Length before the body is read.
func (s *Server) requestConfig(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	uri := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(uri)
	if err := uri.Parse(nil, h.RequestURI()); err == nil && isSiteDeploy(h.Method(), uri.Path()) {
		return fasthttp.RequestConfig{MaxRequestBodySize: int(s.opts.SiteLimits.BundleBytes) + 1, ReadTimeout: s.opts.SiteDeployTimeout}
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: s.opts.BodyLimit}
}

// timeoutOf is the deadline of a request.
func (s *Server) timeoutOf(c *fiber.Ctx) time.Duration {
	if isSiteDeploy(c.Request().Header.Method(), c.Request().URI().Path()) {
		return s.opts.SiteDeployTimeout
	}
	return s.opts.RequestTimeout
}

// bundleTooLarge is the answer to a deploy whose body passes the bundle
// limit before it is read.
func (s *Server) bundleTooLarge() *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: codeInvalid, Field: "bundle", Message: s.opts.SiteLimits.TooLarge().Error()}
}

var errDeploysBusy = &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
	Message: "other site deploys are running; try again after Retry-After seconds"}

func (s *Server) getSite(c *fiber.Ctx) error {
	site, err := s.prov.Site(c.UserContext(), c.Params("slug"))
	if err != nil {
		return err
	}
	return c.JSON(site)
}

// deploySite deploys the .tar.gz in the body and answers 201 with the new
// version once it is served. It runs while the request waits, not as an
// operation: the bundle is only in this request, and a deploy cut off
// anywhere is completed by sending the same bundle again.
func (s *Server) deploySite(c *fiber.Ctx) error {
	slug := c.Params("slug")
	if _, err := s.prov.Site(c.UserContext(), slug); err != nil {
		return err // 404 before the bundle is read
	}
	select {
	case s.deploys <- struct{}{}:
		defer func() { <-s.deploys }()
	default:
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(busyRetryAfter))
		return errDeploysBusy
	}
	b, err := sites.ReadBundle(bytes.NewReader(c.Body()), s.opts.SiteLimits)
	if err != nil {
		var be *sites.BundleError
		if errors.As(err, &be) {
			status := http.StatusBadRequest
			if be.Limit != "" {
				status = http.StatusRequestEntityTooLarge
			}
			return &Error{Status: status, Code: codeInvalid, Field: "bundle", Message: be.Error()}
		}
		return err
	}
	v, err := s.prov.DeploySite(c.UserContext(), slug, b, actor(c))
	if err != nil {
		return err
	}
	c.Location("/v1/tenants/" + slug + "/site")
	return c.Status(http.StatusCreated).JSON(v)
}

// versionParam reads the :number path parameter.
func versionParam(c *fiber.Ctx) (int, error) {
	n, err := strconv.Atoi(c.Params("number"))
	if err != nil || n < 1 {
		return 0, invalid("number", "want a version number (1, 2, ...)")
	}
	return n, nil
}

func (s *Server) deleteSiteVersion(c *fiber.Ctx) error {
	n, err := versionParam(c)
	if err != nil {
		return err
	}
	if err := s.prov.DeleteSiteVersion(c.UserContext(), c.Params("slug"), n, actor(c)); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

type rollbackRequest struct {
	Version int `json:"version"`
}

func (s *Server) rollbackSite(c *fiber.Ctx) error {
	var req rollbackRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Version < 1 {
		return invalid("version", "want the number of a kept version (1, 2, ...)")
	}
	site, err := s.prov.RollbackSite(c.UserContext(), c.Params("slug"), req.Version, actor(c))
	if err != nil {
		return err
	}
	return c.JSON(site)
}

type siteModeRequest struct {
	Mode   string `json:"mode"`
	Domain string `json:"domain"`
}

func (s *Server) setSiteMode(c *fiber.Ctx) error {
	var req siteModeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	site, err := s.prov.SetSiteMode(c.UserContext(), c.Params("slug"), req.Mode, req.Domain, actor(c))
	if err != nil {
		return err
	}
	return c.JSON(site)
}
