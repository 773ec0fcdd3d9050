package storefront

import (
	"regexp"
	"strings"
	"testing"

	"github.com/startupwebapp/platform/platform/directory"
)

func TestBrandDefaultsAndSanitising(t *testing.T) {
	plain := brandOf(&directory.Tenant{ID: 1, Slug: "acme", DisplayName: "Acme Goods", Settings: directory.Settings{FromAddress: "Acme <shop@acme.test>"}})
	if plain.ShopName != "Acme Goods" || plain.Initial != "A" || plain.ContactEmail != "shop@acme.test" || len(plain.About) == 0 || len(plain.TermsOfSale) == 0 {
		t.Errorf("defaults: %+v", plain)
	}
	if !strings.Contains(plain.Theme, "--primary:"+defaultPrimary) {
		t.Errorf("default theme: %s", plain.Theme)
	}
	hostile := brandOf(&directory.Tenant{ID: 2, Slug: "x", Settings: directory.Settings{Branding: &directory.Branding{
		ShopName: "X", PrimaryColor: "red;}body{display:none", AccentColor: "#12345", LogoURL: "javascript:alert(1)",
		FooterLinks: []directory.FooterLink{{Label: "ok", URL: "/contact"}, {Label: "bad", URL: "//evil.test"}, {Label: "data", URL: "data:text/html,x"}, {Label: "web", URL: "https://x.test/a"}},
		About:       "First.\r\n\r\nSecond.",
	}}})
	if strings.Contains(hostile.Theme, "display:none") || !strings.Contains(hostile.Theme, "--primary:"+defaultPrimary) || !strings.Contains(hostile.Theme, "--accent:"+defaultAccent) {
		t.Errorf("colours not sanitised: %s", hostile.Theme)
	}
	if hostile.LogoURL != "" {
		t.Errorf("logo %q kept", hostile.LogoURL)
	}
	if len(hostile.FooterLinks) != 2 || hostile.FooterLinks[0].URL != "/contact" || hostile.FooterLinks[1].URL != "https://x.test/a" {
		t.Errorf("footer links: %+v", hostile.FooterLinks)
	}
	if len(hostile.About) != 2 || hostile.About[1] != "Second." {
		t.Errorf("paragraphs: %q", hostile.About)
	}
	if plain.ThemeHash == brandOf(&directory.Tenant{Settings: directory.Settings{Branding: &directory.Branding{PrimaryColor: "#000000"}}}).ThemeHash {
		t.Error("different colours, same theme fingerprint")
	}
}

var varRE = regexp.MustCompile(`--(primary|on-primary|link):(#[0-9a-f]{6})`)

// TestThemeContrast: whatever colours a tenant picks, links and the header
// text reach WCAG AA contrast (4.5:1).
func TestThemeContrast(t *testing.T) {
	for _, c := range []string{"#ffff00", "#f2f2a0", "#7fd1b9", "#0b7a5c", "#000000", "#ffffff", "#ff8a3d"} {
		vars := map[string]rgb{}
		for _, m := range varRE.FindAllStringSubmatch(themeCSS(c, c), -1) {
			vars[m[1]] = parseHex(m[2])
		}
		if r := contrast(vars["link"], rgb{255, 255, 255}); r < 4.5 {
			t.Errorf("%s: link contrast %.2f", c, r)
		}
		if r := contrast(vars["primary"], vars["on-primary"]); r < 4.5 {
			t.Errorf("%s: header contrast %.2f", c, r)
		}
	}
}

func TestMoney(t *testing.T) {
	for in, want := range map[string]string{"3.50": "$3.50", "0": "$0.00", "1234567.5": "$1,234,567.50", "-2": "-$2.00", "x": ""} {
		if got := money(in); got != want {
			t.Errorf("money(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLocalNext(t *testing.T) {
	for in, want := range map[string]string{"": "/d", "checkout/confirm": "/checkout/confirm", "account": "/account/",
		"//evil.test": "/d", "/user/logout": "/d", "https://evil.test": "/https://evil.test", "/a\\b": "/d"} {
		if got := localNext(in, "/d"); got != want {
			t.Errorf("localNext(%q) = %q, want %q", in, got, want)
		}
	}
}
