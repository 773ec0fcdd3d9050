package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/startupwebapp/platform/platform/config"
	"github.com/startupwebapp/platform/platform/sites"
)

// `swa tenant site` against a running `swa dev`: a directory deployed is
// served by the data plane on the tenant's hosts, listed, rolled back and
// moved to a domain of its own; the other tenants never see it.
func TestTenantSiteCLI(t *testing.T) {
	h := newDevHarness(t)
	h.start()
	env := map[string]string{"SWA_CONTROLPLANE_URL": h.urls.Control, "SWA_ADMIN_TOKEN": h.token}
	run := func(args ...string) (string, string, int) {
		cmd := tenantCommand(func(k string) string { return env[k] })
		var out bytes.Buffer
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cmd.ExecuteContext(ctx); err != nil {
			return out.String(), err.Error(), exitCode(err)
		}
		return out.String(), "", 0
	}
	ok := func(args ...string) string {
		t.Helper()
		out, msg, code := run(args...)
		if code != 0 {
			t.Fatalf("swa tenant %s: exit %d: %s", strings.Join(args, " "), code, msg)
		}
		return out
	}
	// waitFor polls the data plane until host/path answers with want in it.
	waitFor := func(host, path, want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, body := h.get(host, path)
			if strings.Contains(body, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s%s = %d %.60q, want %q", host, path, code, body, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("index.html", "<h1>fork frontend one</h1>")
	write("about.html", "<h1>about the healthtech fork</h1>")
	if out := ok("site", "deploy", "healthtech", dir); !strings.Contains(out, "site version 1 served") {
		t.Errorf("deploy: %q", out)
	}
	waitFor("healthtech.localhost", "/", "fork frontend one")
	waitFor("healthtech.localhost", "/about", "about the healthtech fork")
	if _, body := h.get("fintech.localhost", "/about"); strings.Contains(body, "healthtech fork") {
		t.Errorf("another tenant serves healthtech's site")
	}
	if code, body := h.get("healthtech.localhost", "/clientevent/"); code != 200 || !strings.Contains(body, "clientevent API") {
		t.Errorf("the API behind the site: %d %q", code, body)
	}

	// A .tar.gz works as well as a directory.
	write("index.html", "<h1>fork frontend two</h1>")
	bundle := filepath.Join(t.TempDir(), "site.tar.gz")
	f, err := os.Create(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if err := sites.Pack(dir, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ok("site", "deploy", "healthtech", bundle)
	waitFor("healthtech.localhost", "/", "fork frontend two")

	out := ok("site", "list", "healthtech")
	for _, want := range []string{"mode replace: served on every host", "2", "ready (served)", "1"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	ok("site", "rollback", "healthtech", "1")
	waitFor("healthtech.localhost", "/", "fork frontend one")

	ok("domains", "add", "healthtech", "www.healthtech.test")
	if out := ok("site", "mode", "healthtech", "domain", "--domain", "www.healthtech.test"); !strings.Contains(out, "www.healthtech.test only") {
		t.Errorf("mode: %q", out)
	}
	waitFor("www.healthtech.test", "/", "fork frontend one")
	// The tenant's other hosts have the built-in storefront back.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, body := h.get("healthtech.localhost", "/")
		if !strings.Contains(body, "fork frontend") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthtech.localhost still serves the site in mode domain")
		}
		time.Sleep(20 * time.Millisecond)
	}

	if _, msg, code := run("site", "delete", "healthtech", "1"); code != exitConflict || !strings.Contains(msg, "served") {
		t.Errorf("deleting the served version: exit %d %q", code, msg)
	}
	ok("site", "delete", "healthtech", "2")
	write("user/login.html", "x")
	if _, msg, code := run("site", "deploy", "healthtech", dir); code != exitUsage || !strings.Contains(msg, `"user/login.html"`) {
		t.Errorf("deploying under /user/: exit %d %q", code, msg)
	}
	if _, msg, code := run("site", "rollback", "healthtech", "two"); code != exitUsage || !strings.Contains(msg, "VERSION") {
		t.Errorf("rollback two: exit %d %q", code, msg)
	}
}

// SWA_SITES_BACKEND picks the site file backend; s3 needs a bucket.
func TestOpenSiteBlobs(t *testing.T) {
	ctx := context.Background()
	if b, err := openSiteBlobs(ctx, &config.Config{SitesBackend: "db"}, nil); err != nil {
		t.Errorf("db: %v", err)
	} else if _, ok := b.(*sites.DBBlobs); !ok {
		t.Errorf("db: got %T", b)
	}
	if _, err := openSiteBlobs(ctx, &config.Config{SitesBackend: "s3"}, nil); err == nil || !strings.Contains(err.Error(), "SWA_SITES_S3_BUCKET") {
		t.Errorf("s3 without a bucket: %v, want an error naming SWA_SITES_S3_BUCKET", err)
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	b, err := openSiteBlobs(ctx, &config.Config{SitesBackend: "s3", SitesS3Bucket: "b", SitesS3Prefix: "p/", SitesS3Endpoint: "http://127.0.0.1:1"}, nil)
	if err != nil {
		t.Fatalf("s3: %v", err)
	}
	if s3b, ok := b.(*sites.S3Blobs); !ok || s3b.Key(7, sites.Sum{}) != "p/7/"+strings.Repeat("0", 64) {
		t.Errorf("s3: got %T", b)
	}
}
