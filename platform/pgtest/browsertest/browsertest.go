// Package browsertest drives headless Chromium (SWA_CHROMIUM) for the
// tests that judge pages in a browser: one browser per test, screenshots
// saved as artefacts.
package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/startupwebapp/platform/platform/pgtest"
)

// Browser is one test's Chromium tab.
type Browser struct {
	t   testing.TB
	Ctx context.Context
	dir string
}

// New starts Chromium for t, resolving the host names hostRule maps (a
// host-resolver-rules value such as "MAP *.admin.test 127.0.0.1") at a
// 1280x900 window; everything it does ends after timeout. Screenshots go
// to ArtifactDir(t, artifacts). Without SWA_CHROMIUM the test skips
// locally and fails in CI, as pgtest.Require does.
func New(t testing.TB, hostRule string, timeout time.Duration, artifacts string) *Browser {
	t.Helper()
	chromium := pgtest.Require(t, "SWA_CHROMIUM")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("host-resolver-rules", hostRule),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelT(); cancel(); cancelAlloc() })
	return &Browser{t: t, Ctx: ctx, dir: ArtifactDir(t, artifacts)}
}

// ArtifactDir is where a test's screenshots go: SWA_ARTIFACTS_DIR/name when
// the variable is set (CI keeps it), else testdata/artifacts/name beside the
// test, which git ignores.
func ArtifactDir(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("SWA_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	dir = filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// Shot saves a full-page screenshot as name.png and logs its path.
func (b *Browser) Shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		path := filepath.Join(b.dir, name+".png")
		b.t.Log("screenshot:", path)
		return os.WriteFile(path, png, 0o644)
	})
}

// Run performs actions, failing the test with what on an error.
func (b *Browser) Run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.Ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// Text returns the text of the first element sel matches. A query can meet
// the document of a page being left (the node it found is gone when its
// text is asked for), so a failed read is tried again for a few seconds.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			return s
		}
		if time.Now().After(deadline) || b.Ctx.Err() != nil {
			b.t.Fatalf("read %s: %v", sel, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
