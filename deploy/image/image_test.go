package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

var epoch = time.Unix(1767225600, 0).UTC() // 2026-01-01

// binaries builds swa twice, into two directories, with the image's flags:
// the image's reproducibility starts with the binary's.
var binaries = sync.OnceValues(func() ([2]string, error) {
	dir, err := os.MkdirTemp("", "swa-image-test")
	if err != nil {
		return [2]string{}, err
	}
	var out [2]string
	for i := range out {
		out[i] = filepath.Join(dir, string(rune('a'+i)), "swa")
		if err := BuildBinary("../..", out[i], "test"); err != nil {
			return out, err
		}
	}
	return out, nil
})

func testSpec(t *testing.T, i int) Spec {
	t.Helper()
	bins, err := binaries()
	if err != nil {
		t.Fatalf("build swa: %v", err)
	}
	return Spec{
		Binary: bins[i], CACerts: "/etc/ssl/certs/ca-certificates.crt", Zoneinfo: "/usr/share/zoneinfo",
		Epoch: epoch, Version: "test", Revision: "0123456789abcdef",
	}
}

func build(t *testing.T, s Spec) v1.Image {
	t.Helper()
	img, err := Build(s)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return img
}

func archive(t *testing.T, img v1.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := writeArchive(&buf, "swa:test", img, epoch); err != nil {
		t.Fatalf("writeArchive: %v", err)
	}
	return buf.Bytes()
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSameInputsGiveSameDigest(t *testing.T) {
	a, b := build(t, testSpec(t, 0)), build(t, testSpec(t, 1))
	if da, db := digest(t, a), digest(t, b); da != db {
		t.Fatalf("two builds of one commit: %s and %s", da, db)
	}
	if !bytes.Equal(archive(t, a), archive(t, b)) {
		t.Fatal("two builds of one commit wrote different archives")
	}
	// The digest does follow its inputs: another epoch is another image.
	s := testSpec(t, 0)
	s.Epoch = epoch.Add(time.Second)
	if digest(t, build(t, s)) == digest(t, a) {
		t.Fatal("a different epoch gave the same digest")
	}
}

func TestConfig(t *testing.T) {
	cf, err := build(t, testSpec(t, 0)).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", c.User)
	}
	if strings.Join(c.Entrypoint, " ") != "/swa" || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/swa] and none", c.Entrypoint, c.Cmd)
	}
	if got := sortedKeys(c.ExposedPorts); strings.Join(got, " ") != "8000/tcp 8001/tcp 9100/tcp" {
		t.Errorf("exposed ports %v", got)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Time.Equal(epoch) {
		t.Errorf("platform %s/%s created %v", cf.OS, cf.Architecture, cf.Created)
	}
	for _, h := range cf.History {
		if !h.Created.Time.Equal(epoch) {
			t.Errorf("history %q created %v", h.CreatedBy, h.Created)
		}
	}
	if c.Labels["org.opencontainers.image.version"] != "test" || c.Labels["org.opencontainers.image.revision"] != "0123456789abcdef" {
		t.Errorf("labels %v", c.Labels)
	}
}

type fileInfo struct {
	hdr  tar.Header
	body []byte
}

func contents(t *testing.T, img v1.Image) map[string]fileInfo {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]fileInfo{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[path.Clean("/"+h.Name)] = fileInfo{*h, b}
	}
}

func TestContents(t *testing.T) {
	s := testSpec(t, 0)
	files := contents(t, build(t, s))

	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		t.Fatal(err)
	}
	swa, ok := files["/swa"]
	if !ok || !bytes.Equal(swa.body, bin) || swa.hdr.Mode != 0o755 || swa.hdr.Uid != 0 {
		t.Errorf("/swa: present %v, same bytes %v, mode %o, uid %d", ok, bytes.Equal(swa.body, bin), swa.hdr.Mode, swa.hdr.Uid)
	}
	for name, f := range files {
		if !f.hdr.ModTime.Equal(epoch) {
			t.Errorf("%s: mtime %v", name, f.hdr.ModTime)
		}
		base := path.Base(name)
		if base == "sh" || base == "bash" || base == "busybox" || base == "dash" {
			t.Errorf("%s: a shell in the image", name)
		}
		if f.hdr.Typeflag == tar.TypeReg && f.hdr.Mode&0o111 != 0 && name != "/swa" {
			t.Errorf("%s: executable other than /swa (mode %o)", name, f.hdr.Mode)
		}
		if f.hdr.Typeflag == tar.TypeSymlink && path.IsAbs(f.hdr.Linkname) {
			t.Errorf("%s: absolute link to %s, outside the image's own files", name, f.hdr.Linkname)
		}
	}
	for _, d := range []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin"} {
		if _, ok := files[d]; ok {
			t.Errorf("%s exists", d)
		}
	}
	if !strings.Contains(string(files["/etc/passwd"].body), "nonroot:x:65532:65532:") ||
		!strings.Contains(string(files["/etc/group"].body), "nonroot:x:65532:") {
		t.Errorf("passwd %q group %q", files["/etc/passwd"].body, files["/etc/group"].body)
	}
	if home := files["/home/nonroot"]; home.hdr.Typeflag != tar.TypeDir || home.hdr.Uid != 65532 {
		t.Errorf("/home/nonroot: type %c uid %d", home.hdr.Typeflag, home.hdr.Uid)
	}
	if tmp := files["/tmp"]; tmp.hdr.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp mode %o", tmp.hdr.Mode)
	}

	certs, rest := 0, files["/etc/ssl/certs/ca-certificates.crt"].body
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			certs++
		}
	}
	if certs < 100 {
		t.Errorf("%d CA certificates", certs)
	}
	for _, zone := range []string{"Europe/Berlin", "America/New_York", "UTC"} {
		f, ok := files["/usr/share/zoneinfo/"+zone]
		for ok && f.hdr.Typeflag == tar.TypeSymlink {
			f, ok = files[path.Join("/usr/share/zoneinfo", path.Dir(zone), f.hdr.Linkname)]
		}
		if !ok {
			t.Errorf("zone %s missing", zone)
			continue
		}
		if _, err := time.LoadLocationFromTZData(zone, f.body); err != nil {
			t.Errorf("zone %s: %v", zone, err)
		}
	}
	if _, ok := files["/usr/share/zoneinfo/right/UTC"]; ok {
		t.Error("the leap-second tree is in the image")
	}
}

// The Dockerfile is for people with Docker; it must build the same image:
// same compiler flags, same path, user, entrypoint and ports.
func TestDockerfileDescribesTheImage(t *testing.T) {
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(raw), "")
	directive := func(name string) []string {
		var out []string
		for _, line := range strings.Split(df, "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == name {
				out = append(out, strings.Join(f[1:], " "))
			}
		}
		return out
	}
	cf, err := build(t, testSpec(t, 0)).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if u := directive("USER"); len(u) != 1 || u[0] != cf.Config.User {
		t.Errorf("Dockerfile USER %q, image user %q", u, cf.Config.User)
	}
	var entry []string
	if e := directive("ENTRYPOINT"); len(e) != 1 || json.Unmarshal([]byte(e[0]), &entry) != nil ||
		strings.Join(entry, " ") != strings.Join(cf.Config.Entrypoint, " ") {
		t.Errorf("Dockerfile ENTRYPOINT %q, image %q", e, cf.Config.Entrypoint)
	}
	if c := directive("CMD"); len(c) != 0 {
		t.Errorf("Dockerfile CMD %q; the image has none", c)
	}
	var ports []string
	for _, e := range directive("EXPOSE") {
		for _, p := range strings.Fields(e) {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			ports = append(ports, p)
		}
	}
	sort.Strings(ports)
	if strings.Join(ports, " ") != strings.Join(sortedKeys(cf.Config.ExposedPorts), " ") {
		t.Errorf("Dockerfile EXPOSE %v, image %v", ports, sortedKeys(cf.Config.ExposedPorts))
	}
	if c := directive("COPY"); len(c) == 0 || !strings.HasSuffix(c[len(c)-1], " /swa") {
		t.Errorf("Dockerfile's last COPY %q does not place /swa", c)
	}
	goBuild := "CGO_ENABLED=0 go build " + strings.Join(GoBuildFlags, " ") + ` -ldflags "` + strings.Replace(LDFlags, "%s", "${VERSION}", 1) + `"`
	if !strings.Contains(df, goBuild) {
		t.Errorf("Dockerfile does not build with %s", goBuild)
	}
	// distroless's nonroot variant is the same user and group.
	if from := directive("FROM"); len(from) < 2 || !strings.HasSuffix(from[len(from)-1], ":nonroot") {
		t.Errorf("Dockerfile's final stage %q is not a nonroot base", from)
	}
}

func TestSBOMListsEveryModule(t *testing.T) {
	s := testSpec(t, 0)
	img := build(t, s)
	doc, err := SBOM(s.Binary, img, []debPackage{{"ca-certificates", "1"}, {"tzdata", "2"}}, epoch)
	if err != nil {
		t.Fatal(err)
	}
	var parsed spdxDoc
	if err := json.Unmarshal(doc, &parsed); err != nil {
		t.Fatal(err)
	}
	if parsed.SPDXVersion != "SPDX-2.3" || !strings.HasSuffix(parsed.DocumentNamespace, digest(t, img).String()) {
		t.Errorf("version %s namespace %s", parsed.SPDXVersion, parsed.DocumentNamespace)
	}
	have := map[string]string{}
	contained := map[string]bool{}
	for _, p := range parsed.Packages {
		have[p.Name] = p.VersionInfo
	}
	for _, r := range parsed.Relationships {
		if r.Type == "CONTAINS" {
			contained[r.Related] = true
		}
	}
	if len(contained) != len(parsed.Packages)-1 {
		t.Errorf("%d packages, %d contained in the image", len(parsed.Packages), len(contained))
	}
	out, err := exec.Command("go", "version", "-m", s.Binary).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	deps := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "dep" && f[0] != "=>") {
			continue
		}
		if f[0] == "dep" && len(f) == 3 {
			continue // replaced: the => line follows
		}
		deps++
		if have[f[1]] != f[2] {
			t.Errorf("module %s %s: SBOM has %q", f[1], f[2], have[f[1]])
		}
	}
	if deps < 10 || have["github.com/gofiber/fiber/v2"] == "" {
		t.Errorf("only %d modules read from the binary", deps)
	}
	if have["ca-certificates"] != "1" || have["tzdata"] != "2" || !strings.HasPrefix(have["stdlib"], "go1.") {
		t.Errorf("debian/stdlib packages: %v %v %v", have["ca-certificates"], have["tzdata"], have["stdlib"])
	}
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The archive is both an OCI image layout and a docker-save tarball:
// go-containerregistry's readers of each find the same image in it, and
// every blob matches its digest and size.
func TestArchiveReadsBackAsBothFormats(t *testing.T) {
	img := build(t, testSpec(t, 0))
	want := digest(t, img)
	dir := t.TempDir()
	path := filepath.Join(dir, "swa.tar")
	if err := WriteArchive(path, "swa:test", img, epoch); err != nil {
		t.Fatal(err)
	}
	docker, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatalf("as a docker tarball: %v", err)
	}
	if err := validate.Image(docker); err != nil {
		t.Fatalf("docker tarball: %v", err)
	}
	// Docker's format has no manifest of its own (the reader makes one), so
	// the same image is the same config and the same layers.
	cfgWant, _ := img.ConfigName()
	cfgGot, err := docker.ConfigName()
	if err != nil || cfgGot != cfgWant {
		t.Errorf("docker tarball config %s (%v), want %s", cfgGot, err, cfgWant)
	}
	lw, _ := img.Layers()
	lg, err := docker.Layers()
	if err != nil || len(lg) != len(lw) {
		t.Fatalf("docker tarball: %d layers (%v), want %d", len(lg), err, len(lw))
	}
	for i := range lw {
		dw, _ := lw[i].Digest()
		dg, _ := lg[i].Digest()
		if dw != dg {
			t.Errorf("layer %d: %s, want %s", i, dg, dw)
		}
	}

	oci := filepath.Join(dir, "layout")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(oci, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := layout.ImageIndexFromPath(oci)
	if err != nil {
		t.Fatalf("as an OCI layout: %v", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != want || m.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "swa:test" {
		t.Fatalf("index %+v", m.Manifests)
	}
	fromLayout, err := idx.Image(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(fromLayout); err != nil {
		t.Fatalf("OCI layout image: %v", err)
	}
}
