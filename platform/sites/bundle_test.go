package sites_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/startupwebapp/platform/platform/sites"
)

// Every kind of bad bundle is refused with a BundleError naming the entry
// (or the limit) at fault.
func TestReadBundleRefuses(t *testing.T) {
	t.Parallel()
	ok := entry{name: "index.html", body: "<h1>hi</h1>"}
	small := sites.Limits{Files: 3, FileBytes: 100, TotalBytes: 150, BundleBytes: 1 << 20}
	tests := []struct {
		name      string
		bundle    []byte
		limits    sites.Limits
		wantEntry string
		wantLimit string
		wantMsg   string
	}{
		{"parent directory", tgz(t, ok, entry{name: "../evil.html", body: "x"}), sites.Limits{}, "../evil.html", "", "(..)"},
		{"parent inside", tgz(t, ok, entry{name: "a/../../evil.html", body: "x"}), sites.Limits{}, "a/../../evil.html", "", "(..)"},
		{"absolute", tgz(t, ok, entry{name: "/etc/passwd", body: "x"}), sites.Limits{}, "/etc/passwd", "", "absolute"},
		{"unclean", tgz(t, ok, entry{name: "a//b.html", body: "x"}), sites.Limits{}, "a//b.html", "", "not a clean path"},
		{"backslash", tgz(t, ok, entry{name: `a\b.html`, body: "x"}), sites.Limits{}, `a\b.html`, "", "backslash"},
		{"symlink", tgz(t, ok, entry{name: "link.html", typ: tar.TypeSymlink, link: "/etc/passwd"}), sites.Limits{}, "link.html", "", "symbolic link"},
		{"hard link", tgz(t, ok, entry{name: "hard.html", typ: tar.TypeLink, link: "index.html"}), sites.Limits{}, "hard.html", "", "hard link"},
		{"device", tgz(t, ok, entry{name: "dev", typ: tar.TypeChar}), sites.Limits{}, "dev", "", "device"},
		{"fifo", tgz(t, ok, entry{name: "pipe", typ: tar.TypeFifo}), sites.Limits{}, "pipe", "", "FIFO"},
		{"duplicate", tgz(t, ok, entry{name: "./index.html", body: "again"}), sites.Limits{}, "./index.html", "", "twice"},
		{"file and directory", tgz(t, ok, entry{name: "a", body: "x"}, entry{name: "a/b.html", body: "y"}), sites.Limits{}, "a", "", "both a file and a directory"},
		{"invalid UTF-8", tgz(t, ok, entry{name: "caf\xe9.html", body: "x"}), sites.Limits{}, "caf\xe9.html", "", "UTF-8"},
		{"control character", tgz(t, ok, entry{name: "a\nb.html", body: "x"}), sites.Limits{}, "a\nb.html", "", "control character"},
		{"API prefix", tgz(t, ok, entry{name: "user/login.html", body: "x"}), sites.Limits{}, "user/login.html", "", "/user/"},
		{"API prefix directory", tgz(t, ok, entry{name: "admin/", typ: tar.TypeDir}), sites.Limits{}, "admin/", "", "/admin/"},
		{"too many files", tgz(t, ok, entry{name: "a", body: "1"}, entry{name: "b", body: "2"}, entry{name: "c", body: "3"}), small, "", "files", "more than 3 files"},
		{"file too big", tgz(t, ok, entry{name: "big.bin", body: strings.Repeat("x", 101)}), small, "big.bin", "file size", "over the limit of 100 bytes per file"},
		{"total too big", tgz(t, entry{name: "a", body: strings.Repeat("x", 80)}, entry{name: "b", body: strings.Repeat("y", 80)}), small, "b", "total size", "limit of 150 bytes in all"},
		{"upload too big", tgz(t, ok), sites.Limits{BundleBytes: 10}, "", "bundle size", "over the limit of 10 bytes"},
		{"not gzip", []byte("PK\x03\x04 a zip file"), sites.Limits{}, "", "", "not a gzip-compressed tar"},
		{"empty", tgz(t), sites.Limits{}, "", "", "no files"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := sites.ReadBundle(bytes.NewReader(tc.bundle), tc.limits)
			var be *sites.BundleError
			if !errors.As(err, &be) {
				t.Fatalf("err = %v, want a BundleError", err)
			}
			if be.Entry != tc.wantEntry || be.Limit != tc.wantLimit || !strings.Contains(be.Message, tc.wantMsg) {
				t.Errorf("BundleError{Entry %q, Limit %q, Message %q}, want entry %q, limit %q, message with %q",
					be.Entry, be.Limit, be.Message, tc.wantEntry, tc.wantLimit, tc.wantMsg)
			}
		})
	}
}

// A good bundle: paths cleaned, sorted, text compressed, binaries not,
// and equal content gives an equal digest.
func TestReadBundle(t *testing.T) {
	t.Parallel()
	page := "<p>" + strings.Repeat("hello site ", 200) + "</p>"
	raw := tgz(t, entry{name: "./", typ: tar.TypeDir}, entry{name: "./docs/", typ: tar.TypeDir},
		entry{name: "./docs/index.html", body: page}, entry{name: "logo.png", body: strings.Repeat("\x89PNG", 100)},
		entry{name: "user.html", body: "a page named like an API prefix is fine"})
	b, err := sites.ReadBundle(bytes.NewReader(raw), sites.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range b.Files {
		paths = append(paths, f.Path)
	}
	if got := strings.Join(paths, " "); got != "docs/index.html logo.png user.html" {
		t.Fatalf("paths %q", got)
	}
	if f := b.Files[0]; f.Gzip == nil || f.Brotli == nil || f.ContentType != "text/html; charset=utf-8" {
		t.Errorf("docs/index.html: gzip %v, brotli %v, type %q; want both variants and text/html", f.Gzip != nil, f.Brotli != nil, f.ContentType)
	}
	if f := b.Files[1]; f.Gzip != nil || f.Brotli != nil || f.ContentType != "image/png" {
		t.Errorf("logo.png: compressed %v/%v, type %q; want no variants, image/png", f.Gzip != nil, f.Brotli != nil, f.ContentType)
	}
	again, err := sites.ReadBundle(bytes.NewReader(tgz(t, entry{name: "user.html", body: "a page named like an API prefix is fine"},
		entry{name: "logo.png", body: strings.Repeat("\x89PNG", 100)}, entry{name: "docs/index.html", body: page})), sites.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != b.Digest {
		t.Errorf("the same files in another order give another digest")
	}
}

// Pack turns a directory into a bundle the server accepts, and refuses a
// symbolic link in it.
func TestPack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "css"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"index.html": "<h1>home</h1>", "css/site.css": "body{}"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := sites.Pack(dir, &buf); err != nil {
		t.Fatal(err)
	}
	b, err := sites.ReadBundle(&buf, sites.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Files) != 2 || b.Files[0].Path != "css/site.css" || string(b.Files[1].Data) != "<h1>home</h1>" {
		t.Errorf("packed files %+v", b.Files)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
		t.Fatal(err)
	}
	if err := sites.Pack(dir, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "passwd: not a regular file") {
		t.Errorf("Pack with a symlink: err = %v, want one naming it", err)
	}
}
