package sites_test

import (
	"net/http"
	"strconv"
	"testing"
)

// One range of a file is answered 206 with its Content-Range, one past
// the end 416, several or a malformed one with the whole file; If-Range
// applies the range only while the client's ETag is the file's.
func TestServeRanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	const body = "0123456789abcdefghij" // 20 bytes, too small to compress
	js := "console.log('" + repeat("app ", 300) + "');"
	e.deploy(t, e.acme, files(t, "file.bin", body, "app.js", js, "error.html", page("oops")))
	const host = "www.acme.test"
	etag := e.mustGet(t, host, "/file.bin").header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}

	for _, tc := range []struct {
		name     string
		path     string
		headers  []string
		status   int
		body     string
		rangeHdr string
	}{
		{"no range", "/file.bin", nil, 200, body, ""},
		{"first bytes", "/file.bin", []string{"Range", "bytes=0-3"}, 206, "0123", "bytes 0-3/20"},
		{"middle", "/file.bin", []string{"Range", "bytes=10-12"}, 206, "abc", "bytes 10-12/20"},
		{"open end", "/file.bin", []string{"Range", "bytes=15-"}, 206, "fghij", "bytes 15-19/20"},
		{"suffix", "/file.bin", []string{"Range", "bytes=-3"}, 206, "hij", "bytes 17-19/20"},
		{"suffix longer than the file", "/file.bin", []string{"Range", "bytes=-50"}, 206, body, "bytes 0-19/20"},
		{"end clipped", "/file.bin", []string{"Range", "bytes=18-1000"}, 206, "ij", "bytes 18-19/20"},
		{"unit case", "/file.bin", []string{"Range", "Bytes=1-1"}, 206, "1", "bytes 1-1/20"},
		{"start past the end", "/file.bin", []string{"Range", "bytes=20-"}, 416, "", "bytes */20"},
		{"empty suffix", "/file.bin", []string{"Range", "bytes=-0"}, 416, "", "bytes */20"},
		{"several ranges", "/file.bin", []string{"Range", "bytes=0-1,4-5"}, 200, body, ""},
		{"malformed", "/file.bin", []string{"Range", "bytes=5-2"}, 200, body, ""},
		{"signed", "/file.bin", []string{"Range", "bytes=+1-2"}, 200, body, ""},
		{"other unit", "/file.bin", []string{"Range", "items=0-1"}, 200, body, ""},
		{"if-range current", "/file.bin", []string{"Range", "bytes=0-1", "If-Range", etag}, 206, "01", "bytes 0-1/20"},
		{"if-range stale", "/file.bin", []string{"Range", "bytes=0-1", "If-Range", `"0000"`}, 200, body, ""},
		{"if-range weak", "/file.bin", []string{"Range", "bytes=0-1", "If-Range", "W/" + etag}, 200, body, ""},
		{"if-range date", "/file.bin", []string{"Range", "bytes=0-1", "If-Range", "Wed, 21 Oct 2015 07:28:00 GMT"}, 200, body, ""},
		{"not found page", "/missing", []string{"Range", "bytes=0-1"}, 404, page("oops"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.mustGet(t, host, tc.path, tc.headers...)
			if r.status != tc.status || r.body != tc.body || r.header.Get("Content-Range") != tc.rangeHdr {
				t.Fatalf("status %d, body %q, Content-Range %q; want %d, %q, %q",
					r.status, r.body, r.header.Get("Content-Range"), tc.status, tc.body, tc.rangeHdr)
			}
			if tc.status == 200 && r.header.Get("Accept-Ranges") != "bytes" {
				t.Errorf("Accept-Ranges %q, want bytes", r.header.Get("Accept-Ranges"))
			}
			if n, _ := strconv.Atoi(r.header.Get("Content-Length")); n != len(r.raw) {
				t.Errorf("Content-Length %q for %d bytes", r.header.Get("Content-Length"), len(r.raw))
			}
		})
	}

	t.Run("head", func(t *testing.T) {
		r, err := e.get(t, http.MethodHead, host, "/file.bin", "Range", "bytes=2-5")
		if err != nil {
			t.Fatal(err)
		}
		if r.status != 206 || r.header.Get("Content-Range") != "bytes 2-5/20" || r.header.Get("Content-Length") != "4" || len(r.raw) != 0 {
			t.Fatalf("HEAD: %d %v %q", r.status, r.header, r.raw)
		}
	})

	// The range is of the representation sent: the gzip one's bytes, under
	// its own ETag.
	t.Run("encoded", func(t *testing.T) {
		whole := e.mustGet(t, host, "/app.js", "Accept-Encoding", "gzip")
		if whole.header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("app.js not sent gzipped: %v", whole.header)
		}
		r, _ := e.get(t, http.MethodGet, host, "/app.js", "Accept-Encoding", "gzip", "Range", "bytes=0-9", "If-Range", whole.header.Get("ETag"))
		want := "bytes 0-9/" + strconv.Itoa(len(whole.raw))
		if r.status != 206 || r.header.Get("Content-Range") != want || string(r.raw) != string(whole.raw[:10]) || r.header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%d %q %q, want 206 %q of the gzip bytes", r.status, r.header.Get("Content-Range"), r.raw, want)
		}
		// The identity file's ETag does not match the gzip representation.
		r = e.mustGet(t, host, "/app.js", "Accept-Encoding", "gzip", "Range", "bytes=0-9", "If-Range", e.mustGet(t, host, "/app.js").header.Get("ETag"))
		if r.status != 200 || r.body != js {
			t.Fatalf("If-Range with another representation's ETag: %d, want the whole file", r.status)
		}
	})
}
