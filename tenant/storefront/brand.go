package storefront

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/startupwebapp/platform/platform/directory"
)

// brand is a tenant's branding with every default filled in.
type brand struct {
	ShopName     string
	Tagline      string
	LogoURL      string
	Initial      string
	ContactEmail string
	ContactPhone string
	About        []string
	Privacy      []string
	TermsOfUse   []string
	TermsOfSale  []string
	FooterLinks  []directory.FooterLink
	// Theme is the tenant's stylesheet (colours only) and ThemeHash its
	// fingerprint in the stylesheet's URL.
	Theme     string
	ThemeHash string
}

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

const (
	defaultPrimary = "#2457a6"
	defaultAccent  = "#f2b705"
)

// brandOf resolves t's branding; values that cannot be used safely (a
// colour that is not #rrggbb, a link that is not http(s) or
// site-relative) fall back to the defaults.
func brandOf(t *directory.Tenant) brand {
	var s directory.Branding
	if t.Settings.Branding != nil {
		s = *t.Settings.Branding
	}
	name := strings.TrimSpace(s.ShopName)
	if name == "" {
		name = strings.TrimSpace(t.DisplayName)
	}
	if name == "" {
		name = t.Slug
	}
	b := brand{
		ShopName:     name,
		Tagline:      strings.TrimSpace(s.Tagline),
		LogoURL:      safeURL(s.LogoURL),
		ContactEmail: strings.TrimSpace(s.ContactEmail),
		ContactPhone: strings.TrimSpace(s.ContactPhone),
	}
	if b.Tagline == "" {
		b.Tagline = "Everything " + name + " offers, delivered to your door."
	}
	b.Initial = strings.ToUpper(string([]rune(name)[:1]))
	if b.ContactEmail == "" {
		if addr := fromAddress(t.Settings.FromAddress); addr != "" {
			b.ContactEmail = addr
		}
	}
	b.About = paragraphs(s.About, name+" is an online shop. We pick every product with care and ship it quickly. Questions? Write to us any time.")
	b.Privacy = paragraphs(s.PrivacyPolicy, name+" keeps the information you give us (your name, e-mail address, orders and the pages you visit) to run your account and your orders, and never sells it. You can ask us to show or delete what we hold about you.")
	b.TermsOfUse = paragraphs(s.TermsOfUse, "By using this site you agree to use it lawfully and not to disrupt it or other visitors. The content of this site belongs to "+name+".")
	b.TermsOfSale = paragraphs(s.TermsOfSale, "Prices are in US dollars. Your order is accepted when payment succeeds; we ship to the address you give at checkout. Unused items may be returned within 30 days of delivery for a refund.")
	for _, l := range s.FooterLinks {
		if u := safeURL(l.URL); u != "" && strings.TrimSpace(l.Label) != "" {
			b.FooterLinks = append(b.FooterLinks, directory.FooterLink{Label: strings.TrimSpace(l.Label), URL: u})
		}
	}
	primary, accent := defaultPrimary, defaultAccent
	if colorRE.MatchString(s.PrimaryColor) {
		primary = strings.ToLower(s.PrimaryColor)
	}
	if colorRE.MatchString(s.AccentColor) {
		accent = strings.ToLower(s.AccentColor)
	}
	b.Theme = themeCSS(primary, accent)
	sum := sha256.Sum256([]byte(b.Theme))
	b.ThemeHash = hex.EncodeToString(sum[:6])
	return b
}

// fromAddress is the address inside a From header ("Shop <a@b>" or a@b).
func fromAddress(from string) string {
	from = strings.TrimSpace(from)
	if i := strings.LastIndexByte(from, '<'); i >= 0 && strings.HasSuffix(from, ">") {
		return from[i+1 : len(from)-1]
	}
	if strings.Contains(from, "@") && !strings.ContainsAny(from, " <>") {
		return from
	}
	return ""
}

// safeURL keeps http(s) URLs and site-relative paths, nothing else (no
// javascript:, data: or protocol-relative URLs).
func safeURL(raw string) string {
	raw = strings.TrimSpace(raw)
	if strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, "//") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	return u.String()
}

func paragraphs(text, def string) []string {
	text = strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n"))
	if text == "" {
		text = def
	}
	var out []string
	for _, p := range strings.Split(text, "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// themeCSS is the tenant's stylesheet: custom properties only, each
// colour paired with the text colour that reads on it, and a link colour
// darkened until it reaches 4.5:1 on white (WCAG AA).
func themeCSS(primary, accent string) string {
	p, a := parseHex(primary), parseHex(accent)
	link := p
	for i := 0; i < 20 && contrast(link, rgb{255, 255, 255}) < 4.5; i++ {
		link = link.scale(0.85)
	}
	strong := p
	for i := 0; i < 20 && contrast(strong, rgb{255, 255, 255}) < 4.5; i++ {
		strong = strong.scale(0.85)
	}
	return fmt.Sprintf(":root{--primary:%s;--on-primary:%s;--accent:%s;--on-accent:%s;--link:%s;--primary-soft:%s}\n",
		strong.hex(), onColor(strong), a.hex(), onColor(a), link.hex(), p.mix(rgb{255, 255, 255}, 0.9).hex())
}

type rgb struct{ r, g, b float64 }

func parseHex(s string) rgb {
	n, _ := strconv.ParseUint(strings.TrimPrefix(s, "#"), 16, 32)
	return rgb{float64(n >> 16 & 0xff), float64(n >> 8 & 0xff), float64(n & 0xff)}
}

func (c rgb) hex() string {
	return fmt.Sprintf("#%02x%02x%02x", int(math.Round(c.r)), int(math.Round(c.g)), int(math.Round(c.b)))
}

func (c rgb) scale(f float64) rgb { return rgb{c.r * f, c.g * f, c.b * f} }

func (c rgb) mix(o rgb, f float64) rgb {
	return rgb{c.r + (o.r-c.r)*f, c.g + (o.g-c.g)*f, c.b + (o.b-c.b)*f}
}

func luminance(c rgb) float64 {
	ch := func(v float64) float64 {
		v /= 255
		if v <= 0.03928 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(c.r) + 0.7152*ch(c.g) + 0.0722*ch(c.b)
}

func contrast(a, b rgb) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// onColor is black or white, whichever reads better on c.
func onColor(c rgb) string {
	if contrast(c, rgb{0, 0, 0}) >= contrast(c, rgb{255, 255, 255}) {
		return "#111111"
	}
	return "#ffffff"
}
