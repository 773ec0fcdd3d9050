package main

import (
	"net/url"
	"strings"
	"testing"
)

// TestDBServerAndMoveCLI registers the second test cluster with `swa
// dbserver add` (the connection string from standard input), lists it,
// and moves a tenant there with `swa tenant move --wait`, which prints how
// long its writes paused; no password shows in any output or log.
func TestDBServerAndMoveCLI(t *testing.T) {
	t.Parallel()
	h := newTenantCLIHarness(t)
	dsn := h.pe.SecondServerDSN()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	h.ok("create", "--slug", "travels", "--wait")

	db := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		return h.runCommand(dbserverCommand, nil, stdin, args...)
	}
	if _, msg, code := db("", "add", "second"); code != exitUsage || !strings.Contains(msg, "--admin-dsn-file") {
		t.Errorf("add without a connection string: exit %d %q, want %d naming --admin-dsn-file", code, msg, exitUsage)
	}
	if _, msg, code := db("postgres://nobody:wrong@"+u.Host+"/postgres?sslmode=disable", "add", "second", "--admin-dsn-file", "-"); code != exitUsage || !strings.Contains(msg, "admin_dsn") {
		t.Errorf("add with a login that fails: exit %d %q, want %d naming admin_dsn", code, msg, exitUsage)
	}
	out, msg, code := db(dsn+"\n", "add", "second", "--admin-dsn-file", "-", "--capacity", "40")
	if code != 0 || !strings.Contains(out, "second") || !strings.Contains(out, "40") {
		t.Fatalf("add: exit %d %q\n%s", code, msg, out)
	}
	out, msg, code = db("", "list")
	if code != 0 || !strings.Contains(out, "default") || !strings.Contains(out, "second") {
		t.Fatalf("list: exit %d %q\n%s", code, msg, out)
	}

	if _, msg, code := h.run(nil, "", "move", "travels"); code != exitUsage || !strings.Contains(msg, "--to-server") {
		t.Errorf("move without a server: exit %d %q", code, msg)
	}
	if _, _, code := h.run(nil, "", "move", "travels", "--to-server", "nowhere", "--wait"); code != exitUsage {
		t.Errorf("move to an unknown server: exit %d, want %d", code, exitUsage)
	}
	out = h.ok("move", "travels", "--to-server", "second", "--wait")
	if !strings.Contains(out, "travels") || !strings.Contains(out, "moved from default to second; writes paused ") {
		t.Errorf("move output:\n%s", out)
	}
	if _, _, code := h.run(nil, "", "move", "travels", "--to-server", "default"); code != exitConflict {
		t.Errorf("move back before the old copy is dropped: exit %d, want %d", code, exitConflict)
	}
	if strings.Contains(h.output.String(), password) || strings.Contains(h.logs.String(), password) {
		t.Error("the admin password is in the output or the log")
	}
}
