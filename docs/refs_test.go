package docs

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// The reference convention (README.md, "Citing the reference"):
//
//   - a section sign and a number (one or more dot-separated parts, a range
//     written with a hyphen) names a section of api.md, whose heading starts
//     with that number;
//   - Q and a number names an entry of differences.md;
//   - U, O or E and a number names an endpoint or a mail defined in api.md.
//
// A target is a Markdown heading whose first word is the reference (without
// the section sign, trailing '.' or ':' ignored, case ignored), or an
// explicit anchor <a id="..."></a> holding it.

// Where each kind of reference must resolve.
const (
	apiFile         = "api.md"
	differencesFile = "differences.md"
)

var (
	sectionRE = regexp.MustCompile(`§(\d+(?:\.\d+)*)(?:-(\d+(?:\.\d+)*))?`)
	quirkRE   = regexp.MustCompile(`\bQ\d+\b`)
	idRE      = regexp.MustCompile(`\b[UOE]\d{1,2}\b`)
	anchorRE  = regexp.MustCompile(`<a\s+id="([^"]+)"\s*>`)
	linkRE    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	codeRE    = regexp.MustCompile("`[^`]*`")
)

// ref is one reference found in a line: the file it must resolve in and
// the token that must be a target there.
type ref struct {
	file  string // apiFile or differencesFile
	token string // "1.10", "Q27", "U6" (lower-cased when compared)
	text  string // as written, for messages
}

// findRefs returns the references in one line, in order.
func findRefs(line string) []ref {
	var out []ref
	for _, m := range sectionRE.FindAllStringSubmatch(line, -1) {
		out = append(out, ref{apiFile, m[1], "§" + m[1]})
		if m[2] != "" {
			out = append(out, ref{apiFile, m[2], "§" + m[2]})
		}
	}
	for _, q := range quirkRE.FindAllString(line, -1) {
		out = append(out, ref{differencesFile, q, q})
	}
	for _, id := range idRE.FindAllString(line, -1) {
		out = append(out, ref{apiFile, id, id})
	}
	return out
}

// targets are the headings' first words and the explicit anchors of each
// Markdown file of a directory, lower-cased; slugs are the fragments
// GitHub gives the headings.
type targets struct {
	words map[string]map[string]bool
	slugs map[string]map[string]bool
}

func (t targets) resolves(r ref) bool { return t.words[r.file][strings.ToLower(r.token)] }

// loadTargets reads every .md file of dir.
func loadTargets(dir string) (targets, error) {
	t := targets{words: map[string]map[string]bool{}, slugs: map[string]map[string]bool{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return t, err
	}
	for _, f := range files {
		words, slugs, err := mdTargets(f)
		if err != nil {
			return t, err
		}
		t.words[filepath.Base(f)], t.slugs[filepath.Base(f)] = words, slugs
	}
	return t, nil
}

// mdTargets returns a Markdown file's heading first words and anchors
// (words) and its GitHub heading slugs and anchors (slugs). Lines inside
// fenced code blocks are no headings.
func mdTargets(path string) (words, slugs map[string]bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	words, slugs = map[string]bool{}, map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		for _, m := range anchorRE.FindAllStringSubmatch(line, -1) {
			words[strings.ToLower(m[1])] = true
			slugs[m[1]] = true
		}
		title, ok := strings.CutPrefix(line, "#")
		if !ok {
			continue
		}
		title = strings.TrimSpace(strings.TrimLeft(title, "#"))
		if f := strings.Fields(title); len(f) > 0 {
			words[strings.ToLower(strings.TrimRight(f[0], ".:"))] = true
		}
		s := slug(anchorRE.ReplaceAllString(title, ""))
		if n := seen[s]; n > 0 {
			slugs[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			slugs[s] = true
		}
		seen[s]++
	}
	return words, slugs, nil
}

// slug is GitHub's fragment for a heading: lower case, punctuation other
// than '-' and '_' dropped, spaces made hyphens.
func slug(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(title)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// moduleRoot is the nearest directory at or above the working directory
// holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// skipDir reports directories whose files are not the project's source:
// hidden ones (.dev, .git), vendor and testdata.
func skipDir(name string) bool {
	return strings.HasPrefix(name, ".") || name == "vendor" || name == "testdata" || name == "node_modules"
}

// unresolved scans every .go file under root and returns "file:line: ref"
// for each reference that tg does not resolve, paths relative to root.
func unresolved(root string, tg targets) ([]string, error) {
	var bad []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		found, err := scanFile(path, rel, tg)
		bad = append(bad, found...)
		return err
	})
	return bad, err
}

func scanFile(path, rel string, tg targets) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var bad []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		for _, r := range findRefs(sc.Text()) {
			if !tg.resolves(r) {
				bad = append(bad, fmt.Sprintf("%s:%d: %s has no heading or anchor in docs/%s", filepath.ToSlash(rel), n, r.text, r.file))
			}
		}
	}
	return bad, sc.Err()
}

// TestCodeReferencesResolve is the convention's guard: a comment citing a
// section, quirk, endpoint or mail that docs/ does not define fails here,
// naming the file and line.
func TestCodeReferencesResolve(t *testing.T) {
	tg, err := loadTargets(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{apiFile, differencesFile} {
		if len(tg.words[f]) == 0 {
			t.Fatalf("docs/%s is missing or has no headings", f)
		}
	}
	bad, err := unresolved(moduleRoot(t), tg)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Error(b)
	}
}

// TestDocsReferencesResolve holds the Markdown files here to the same
// convention, and checks their relative links: the file exists and a
// fragment names a heading or an anchor of it.
func TestDocsReferencesResolve(t *testing.T) {
	tg, err := loadTargets(".")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fenced := false
		for n, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				fenced = !fenced
			}
			for _, r := range findRefs(line) {
				if !tg.resolves(r) {
					t.Errorf("docs/%s:%d: %s has no heading or anchor in docs/%s", f, n+1, r.text, r.file)
				}
			}
			if fenced {
				continue
			}
			// Code spans hold regular expressions and paths, not links.
			for _, m := range linkRE.FindAllStringSubmatch(codeRE.ReplaceAllString(line, ""), -1) {
				if msg := checkLink(f, m[1]); msg != "" {
					t.Errorf("docs/%s:%d: link %s: %s", f, n+1, m[1], msg)
				}
			}
		}
	}
}

// checkLink returns why a link from docs/from is broken, "" when it is not
// (or is not a relative link).
func checkLink(from, target string) string {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return ""
	}
	path, frag, _ := strings.Cut(target, "#")
	if path == "" {
		path = from
	}
	if _, err := os.Stat(path); err != nil {
		return "no such file"
	}
	if frag == "" || !strings.HasSuffix(path, ".md") {
		return ""
	}
	_, slugs, err := mdTargets(path)
	if err != nil {
		return err.Error()
	}
	if !slugs[frag] {
		return "no heading or anchor " + frag
	}
	return ""
}

// TestMatcher pins what counts as a reference, and shows the scan fails on
// one that resolves nowhere. The made-up references are assembled at run
// time so that this file does not itself hold an unresolved one.
func TestMatcher(t *testing.T) {
	sect := "\u00a7"
	cases := []struct {
		line string
		want []string
	}{
		{"see " + sect + "1.10 and " + sect + "7.1", []string{sect + "1.10", sect + "7.1"}},
		{"(" + sect + "12 Q" + "27)", []string{sect + "12", "Q" + "27"}},
		{sect + "9.2-" + sect + "9.4 and " + sect + "1.5-1.8", []string{sect + "9.2", sect + "9.4", sect + "1.5", sect + "1.8"}},
		{"the mails of " + sect + "2.3. Next", []string{sect + "2.3"}},
		{"O" + "20 and U" + "6, E" + "8", []string{"O" + "20", "U" + "6", "E" + "8"}},
		{"no refs: Q" + "A, SQL1, 1E6, %C3%A9, FOO2", nil},
	}
	for _, c := range cases {
		var got []string
		for _, r := range findRefs(c.line) {
			got = append(got, r.text)
		}
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("findRefs(%q) = %q, want %q", c.line, got, want)
		}
	}

	tg, err := loadTargets(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range findRefs(sect + "1.10 " + sect + "12 Q" + "27 U" + "6 O" + "20") {
		if !tg.resolves(r) {
			t.Errorf("%s should resolve in docs/%s", r.text, r.file)
		}
	}

	// A module with one Go file holding one good and three made-up
	// references: the scan must name the three, with their line.
	root := t.TempDir()
	src := "package x\n\n// " + sect + "1.10 is fine; " + sect + "99.9 is not\n// nor Q" + "999, nor U" + "77\n"
	if err := os.WriteFile(filepath.Join(root, "x.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	hidden := filepath.Join(root, ".dev")
	if err := os.Mkdir(hidden, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hidden, "y.go"), []byte("// Q"+"998\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad, err := unresolved(root, tg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"x.go:3: " + sect + "99.9 has no heading or anchor in docs/api.md",
		"x.go:4: Q" + "999 has no heading or anchor in docs/differences.md",
		"x.go:4: U" + "77 has no heading or anchor in docs/api.md",
	}
	if !slices.Equal(bad, want) {
		t.Errorf("unresolved = %q\nwant %q", bad, want)
	}
}

// TestSlug pins the fragment rule the link check relies on.
func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"1.10 Other headers":                   "110-other-headers",
		"U6 `POST /user/create-account`":       "u6-post-usercreate-account",
		"Tenant tables and their Django names": "tenant-tables-and-their-django-names",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}
