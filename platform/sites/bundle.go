package sites

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/andybalholm/brotli"
	"golang.org/x/sync/errgroup"
)

// File is one file of a bundle, with its precompressed variants.
type File struct {
	Path        string // relative, clean, no leading slash: "assets/app.js"
	ContentType string
	Data        []byte
	Sum         Sum
	// Gzip and Brotli are the file compressed, when that is worth it
	// (text-like types, and only when smaller); nil otherwise.
	Gzip, Brotli       []byte
	GzipSum, BrotliSum Sum
}

// Bundle is a validated site bundle, ready to deploy.
type Bundle struct {
	Files  []File // sorted by path
	Bytes  int64  // sum of the files' sizes
	Digest Sum    // of the paths and content sums: equal bundles, equal digests
}

const maxPathLen = 1024

// ReadBundle reads a .tar.gz site bundle of at most lim.BundleBytes,
// checks every entry (regular files and directories only, clean relative
// UTF-8 paths, no duplicates, nothing under the API's prefixes) and the
// limits, and compresses the text-like files. Its errors are *BundleError,
// naming the entry or the limit.
func ReadBundle(r io.Reader, lim Limits) (*Bundle, error) {
	lim = lim.withDefaults()
	raw, err := io.ReadAll(io.LimitReader(r, lim.BundleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	if int64(len(raw)) > lim.BundleBytes {
		return nil, lim.TooLarge()
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, &BundleError{Message: "not a gzip-compressed tar archive (.tar.gz)"}
	}
	tr := tar.NewReader(zr)
	var (
		files   []File
		seen    = map[string]bool{} // every path, files and directories
		dirs    = map[string]bool{}
		total   int64
		entries int
	)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &BundleError{Message: "malformed archive: " + err.Error()}
		}
		entries++
		if entries > 2*lim.Files {
			return nil, &BundleError{Limit: "files", Message: fmt.Sprintf("more than %d entries; the limit is %d files", 2*lim.Files, lim.Files)}
		}
		switch hdr.Typeflag {
		case tar.TypeXGlobalHeader:
			continue
		case tar.TypeSymlink:
			return nil, &BundleError{Entry: hdr.Name, Message: "is a symbolic link; a bundle holds regular files and directories only"}
		case tar.TypeLink:
			return nil, &BundleError{Entry: hdr.Name, Message: "is a hard link; a bundle holds regular files and directories only"}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return nil, &BundleError{Entry: hdr.Name, Message: "is a device or FIFO; a bundle holds regular files and directories only"}
		case tar.TypeDir:
			p, msg := cleanPath(hdr.Name, true)
			if msg != "" {
				return nil, &BundleError{Entry: hdr.Name, Message: msg}
			}
			if p != "" {
				if seen[p] && !dirs[p] {
					return nil, &BundleError{Entry: hdr.Name, Message: "is both a file and a directory"}
				}
				seen[p], dirs[p] = true, true
			}
			continue
		case tar.TypeReg, 0: // 0: regular file in archives older than POSIX
		default:
			return nil, &BundleError{Entry: hdr.Name, Message: fmt.Sprintf("has an unsupported entry type %q; a bundle holds regular files and directories only", hdr.Typeflag)}
		}
		p, msg := cleanPath(hdr.Name, false)
		if msg == "" && p == "" {
			msg = "has an empty name"
		}
		if msg != "" {
			return nil, &BundleError{Entry: hdr.Name, Message: msg}
		}
		if seen[p] {
			if dirs[p] {
				return nil, &BundleError{Entry: hdr.Name, Message: "is both a file and a directory"}
			}
			return nil, &BundleError{Entry: hdr.Name, Message: "appears twice in the bundle"}
		}
		seen[p] = true
		if len(files) == lim.Files {
			return nil, &BundleError{Limit: "files", Message: fmt.Sprintf("more than %d files, the limit", lim.Files)}
		}
		if hdr.Size > lim.FileBytes {
			return nil, &BundleError{Entry: hdr.Name, Limit: "file size", Message: fmt.Sprintf("is %s, over the limit of %s per file", mib(hdr.Size), mib(lim.FileBytes))}
		}
		if total+hdr.Size > lim.TotalBytes {
			return nil, &BundleError{Entry: hdr.Name, Limit: "total size", Message: fmt.Sprintf("takes the files past the limit of %s in all (uncompressed)", mib(lim.TotalBytes))}
		}
		data, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
		if err != nil || int64(len(data)) != hdr.Size {
			return nil, &BundleError{Entry: hdr.Name, Message: "is cut short: the archive is truncated"}
		}
		total += hdr.Size
		files = append(files, File{Path: p, Data: data})
	}
	if len(files) == 0 {
		return nil, &BundleError{Message: "holds no files"}
	}
	// A file may not also be a directory: "a" and "a/b" cannot both exist.
	for _, f := range files {
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			if seen[d] && !dirs[d] {
				return nil, &BundleError{Entry: d, Message: "is both a file and a directory"}
			}
		}
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	if err := prepare(files); err != nil {
		return nil, err
	}
	return &Bundle{Files: files, Bytes: total, Digest: digest(files)}, nil
}

// TooLarge is the error of an upload over l.BundleBytes, for a server that
// refuses one before reading it.
func (l Limits) TooLarge() *BundleError {
	l = l.withDefaults()
	return &BundleError{Limit: "bundle size", Message: fmt.Sprintf("the upload is over the limit of %s (compressed)", mib(l.BundleBytes))}
}

// cleanPath checks an archive name and returns it relative and clean, or
// the reason it is refused. "./" prefixes are dropped, and a directory's
// trailing slash; the bundle's root itself comes back as "".
func cleanPath(name string, dir bool) (string, string) {
	switch {
	case !utf8.ValidString(name):
		return "", "is not valid UTF-8"
	case len(name) > maxPathLen:
		return "", fmt.Sprintf("is longer than %d bytes", maxPathLen)
	case strings.HasPrefix(name, "/"):
		return "", "is an absolute path; want paths relative to the site's root"
	case strings.Contains(name, `\`):
		return "", "contains a backslash; want / between folders"
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "", "contains a control character"
		}
	}
	p := name
	for strings.HasPrefix(p, "./") {
		p = p[2:]
	}
	if dir {
		p = strings.TrimSuffix(p, "/")
	}
	if p == "" || p == "." {
		return "", ""
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", "leaves the site's root (..)"
		}
	}
	if path.Clean(p) != p {
		return "", fmt.Sprintf("is not a clean path (want %q)", path.Clean(p))
	}
	if isAPIPath(p) {
		first, _, _ := strings.Cut(p, "/")
		return "", fmt.Sprintf("lies under /%s/, which the API answers; a site cannot serve it", first)
	}
	return p, ""
}

// prepare hashes every file, sets its content type and compresses the
// text-like ones, a few at a time.
func prepare(files []File) error {
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range files {
		g.Go(func() error {
			f := &files[i]
			f.Sum = sumOf(f.Data)
			f.ContentType = contentType(f.Path)
			if !compressible(f.ContentType) || len(f.Data) < minCompress {
				return nil
			}
			if gz := gzipBytes(f.Data); worthIt(gz, f.Data) {
				f.Gzip, f.GzipSum = gz, sumOf(gz)
			}
			if br := brotliBytes(f.Data); worthIt(br, f.Data) {
				f.Brotli, f.BrotliSum = br, sumOf(br)
			}
			return nil
		})
	}
	return g.Wait()
}

// minCompress is the smallest file worth compressing.
const minCompress = 256

// worthIt keeps a compressed variant that saves at least a tenth.
func worthIt(c, orig []byte) bool { return len(c) < len(orig)-len(orig)/10 }

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
	_, _ = w.Write(b)                                       // writes to a bytes.Buffer cannot fail
	_ = w.Close()
	return buf.Bytes()
}

// brotliLevel trades deploy time for size: brotli's top levels are many
// times slower for a few percent.
const brotliLevel = 8

func brotliBytes(b []byte) []byte {
	var buf bytes.Buffer
	w := brotli.NewWriterLevel(&buf, brotliLevel)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func digest(files []File) Sum {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f.Path))
		h.Write([]byte{0})
		h.Write(f.Sum[:])
	}
	var s Sum
	copy(s[:], h.Sum(nil))
	return s
}

// types are the content types of the files a site usually has, so they do
// not depend on the host's mime tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
	".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
	".json": "application/json", ".map": "application/json", ".webmanifest": "application/manifest+json",
	".xml": "application/xml", ".txt": "text/plain; charset=utf-8", ".csv": "text/csv; charset=utf-8",
	".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
	".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif", ".ico": "image/vnd.microsoft.icon",
	".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf", ".eot": "application/vnd.ms-fontobject",
	".pdf": "application/pdf", ".wasm": "application/wasm", ".mp4": "video/mp4", ".webm": "video/webm",
	".mp3": "audio/mpeg", ".zip": "application/zip",
}

func contentType(p string) string {
	ext := strings.ToLower(path.Ext(p))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ct string) bool {
	ct, _, _ = strings.Cut(ct, ";")
	switch {
	case strings.HasPrefix(ct, "text/"), strings.HasSuffix(ct, "+json"), strings.HasSuffix(ct, "+xml"):
		return true
	}
	switch ct {
	case "application/json", "application/xml", "application/javascript", "application/wasm",
		"image/vnd.microsoft.icon", "font/ttf", "font/otf", "application/vnd.ms-fontobject":
		return true
	}
	return false
}

// Pack writes the regular files under dir as a .tar.gz bundle, paths
// relative to dir. A symbolic link or special file is an error naming it,
// as the server would refuse it.
func Pack(dir string, w io.Writer) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file (a symbolic link or special file); a site bundle holds regular files only", rel)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: rel, Mode: 0o644, Size: info.Size(), ModTime: info.ModTime(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, info.Size())
		return err
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	return nil
}
