//go:build e2e

package main

// The web console in a real headless Chromium, driven with chromedp, against the real `nodeexec serve`
// and a real test host: sign-in (a wrong token says so), a deploy followed live to success without a
// reload, a rollback by the button (confirmed), and a failed release's journal excerpt on its page.
// With NODEEXEC_UI_SCREENSHOTS=1 it saves a screenshot of each page into docs/console/.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/nodeexec/nodeexec/internal/testbed"
)

// browser is one headless Chromium tab and what its page logged.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string // where screenshots go; "" for none

	mu      sync.Mutex
	console []string
}

func newBrowser(t *testing.T, chrome, shots string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.WindowSize(1440, 900))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, shots: shots}
	// The first run starts the browser; it gets no timeout, which would stop the browser with it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m.String())
			b.mu.Unlock()
		}
	}()
	return b
}

// do runs steps within d, failing the test with the page's console and text when one fails.
func (b *browser) do(what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.mu.Lock()
		logged := strings.Join(b.console, "\n  ")
		b.mu.Unlock()
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		b.t.Fatalf("%s: %v\npage console:\n  %s\npage text:\n%s", what, err, logged, text)
	}
}

// until waits for a JavaScript condition on the page: polled, no sleeps.
func until(expr string, d time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(d))
}

func goTo(hash string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[string](fmt.Sprintf("location.hash = %q", hash))(ctx, t)
		return err
	})
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func TestConsoleFollowsADeployLiveRollsItBackAndShowsAFailedReleasesJournal(t *testing.T) {
	if os.Getenv("NODEEXEC_E2E") != "1" {
		t.Skip("set NODEEXEC_E2E=1, run `hack/testhosts up 3` and `hack/deps` (chromium), or run `make e2e`")
	}
	if _, err := testbed.LoadHosts(); err != nil {
		t.Skipf("no test hosts: %v (eval \"$(hack/testhosts env)\")", err)
	}
	chrome, err := osexec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed: run hack/deps (Debian's chromium and chromium-driver)")
	}
	deployToken, readToken := "ui-deploy-"+randomHex(16), "ui-read-"+randomHex(16)
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	writeFile(t, tokens, fmt.Sprintf("- {name: ui-oncall, token: %s, scopes: [deploy]}\n- {name: ui-viewer, token: %s, scopes: [read]}\n", deployToken, readToken))
	env := setupAPIWith(t, "ui", deployToken, []string{"--tokens-file", tokens})
	env.svc.AddRelease(t, "v3-broken", true, nil)
	host := env.hosts.Addrs[0]
	deploy := func(version string) string {
		t.Helper()
		body := env.deployBody(version)
		body["nodes"] = []string{host}
		code, out := env.call("POST", "/api/v1/deployments", body)
		if code != 202 {
			t.Fatalf("deploy %s = %d %v", version, code, out)
		}
		return out["id"].(string)
	}
	shots := ""
	if os.Getenv("NODEEXEC_UI_SCREENSHOTS") == "1" {
		shots = filepath.Join(env.repo, "docs", "console")
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, chrome, shots)
	const quick, deployWait = 20 * time.Second, 3 * time.Minute
	signIn := func(token string) {
		b.do("sign in", quick,
			chromedp.WaitVisible(chromedp.CSS("#token")),
			chromedp.SendKeys(chromedp.CSS("#token"), token),
			chromedp.Click(chromedp.CSS("#signin")))
	}
	state := func(s string) string {
		return fmt.Sprintf(`document.querySelector('#deployment-state')?.dataset.state === %q`, s)
	}

	start := time.Now()
	b.do("open the console at /ui", quick, chromedp.Navigate(env.base+"/ui"), chromedp.WaitVisible(chromedp.CSS("#token")),
		until(`location.pathname === '/ui/'`, quick))
	b.screenshot("sign-in")
	signIn("not-a-token-" + randomHex(16))
	b.do("a wrong token is refused, saying so", quick,
		until(`document.querySelector('#login-error').textContent.includes('refused')`, quick),
		until(`sessionStorage.getItem('nodeexec.token') === null && document.querySelector('#nav').hidden`, quick))

	// A read token sees the deploy live, and gets no buttons.
	signIn(readToken)
	b.do("the read token signs in", quick, until(`!document.querySelector('#nav').hidden && document.querySelector('#who').textContent.includes('ui-viewer (read)')`, quick))
	first := deploy("v1")
	b.do("v1 goes from deploying to success live, without a reload, and a read token gets no buttons", deployWait,
		goTo("#/deployments/"+first),
		until(state("deploying")+` || `+state("pending"), quick),
		chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`),
		until(state("deploying")+` && document.querySelector('#nodes tbody tr')?.dataset.state === 'deploying'`, deployWait),
		until(state("success")+` && document.querySelector('#nodes tbody tr')?.dataset.state === 'success'`, deployWait),
		until(`window.sameDocument === true && !document.querySelector('#rollback') && !document.querySelector('#cancel')`, quick))
	t.Logf("v1 followed live to success: %s", time.Since(start).Round(time.Millisecond))

	// A deploy token gets the rollback button; Escape keeps the deployment, yes rolls it back.
	b.do("sign out", quick, chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	signIn(deployToken)
	b.do("the deploy token signs in", quick, until(`document.querySelector('#who').textContent.includes('ui-oncall (deploy)')`, quick))
	second := deploy("v2")
	b.do("v2 goes from deploying to success live", deployWait,
		goTo("#/deployments/"+second),
		chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`),
		until(state("deploying"), deployWait),
		until(state("success")+` && window.sameDocument === true`, deployWait),
		chromedp.WaitVisible(chromedp.CSS("#rollback")))
	b.screenshot("deployment")
	b.do("Escape closes the confirmation and keeps the deployment", quick,
		chromedp.Click(chromedp.CSS("#rollback")),
		until(`document.querySelector('#confirm').open && document.activeElement.id === 'confirm-no'`, quick),
		chromedp.KeyEvent(kb.Escape),
		until(`!document.querySelector('#confirm').open && location.hash === '#/deployments/`+second+`'`, quick))
	// The dialog's close event is dispatched after it closed: a question asked again at once must not be
	// answered by the last one's late event (it was, and the confirmed rollback below then did nothing).
	b.do("a question asked again at once keeps its own answer", quick,
		chromedp.Evaluate[chromedp.Void](`(() => {
			const dialog = document.querySelector('#confirm'), rollback = document.querySelector('#rollback');
			window.lateClose = false;
			rollback.click();
			dialog.addEventListener('close', () => { window.lateClose = true; }, { once: true });
			dialog.close();
			rollback.click();
		})()`),
		until(`window.lateClose === true && document.querySelector('#confirm').open`, quick),
		chromedp.Click(chromedp.CSS("#confirm-no")),
		until(`!document.querySelector('#confirm').open && location.hash === '#/deployments/`+second+`'`, quick))
	start = time.Now()
	b.do("the rollback button, confirmed, rolls v2 back", deployWait,
		chromedp.Click(chromedp.CSS("#rollback")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-yes")),
		chromedp.Click(chromedp.CSS("#confirm-yes")),
		until(`location.hash.startsWith('#/deployments/') && location.hash !== '#/deployments/`+second+`'`, quick),
		until(state("rolled_back")+` && document.querySelector('#nodes tbody tr')?.dataset.state === 'rolled_back' && window.sameDocument === true`, deployWait))
	t.Logf("rolled back by the button: %s", time.Since(start).Round(time.Millisecond))
	if code, node := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/"+host, nil); code != 200 || node["current_version"] != "v1" {
		t.Errorf("after the rollback the node's record = %d %v, want v1", code, node)
	}

	// A release whose health check fails: its page shows the node's journal excerpt.
	start = time.Now()
	broken := deploy("v3-broken")
	b.do("the failed deploy's page shows the journal excerpt", deployWait,
		goTo("#/deployments/"+broken),
		until(state("failed"), deployWait),
		until(`[...document.querySelectorAll('#failures .journal')].some((p) => p.textContent.includes('v3-broken (broken=true) listening'))`, quick))
	t.Logf("the broken release failed, its journal shown: %s", time.Since(start).Round(time.Millisecond))
	b.screenshot("deployment-failed")

	// The other pages, on the records just made.
	b.do("the deployments list, filtered by kind", quick, goTo("#/deployments?kind=rollback"),
		until(`document.querySelectorAll('#deployments tbody tr').length === 1`, quick))
	b.do("the deployments list", quick, goTo("#/deployments"),
		until(`document.querySelectorAll('#deployments tbody tr').length === 4 && document.querySelector('#deployments tbody tr').dataset.id === '`+broken+`'`, quick))
	b.screenshot("deployments")
	b.do("the services", quick, goTo("#/services"),
		until(`document.querySelector('#services [data-service="`+env.svc.Name+`"]')?.textContent.includes('v1')`, quick))
	b.screenshot("services")
	b.do("the service's nodes", quick, goTo("#/services/"+env.svc.Name),
		until(`document.querySelector('#nodes [data-host="`+host+`"]')?.textContent.includes('v1')`, quick))
	b.screenshot("service")
	b.do("the node's history", quick, goTo("#/nodes/"+env.svc.Name+"/"+host),
		until(`document.querySelectorAll('#history tbody tr').length === 4`, quick))
	b.screenshot("node")
	// This serve's database knows this test's service only, so the pass touches nothing of anyone else's.
	code, pass := env.call("POST", "/api/v1/cleanups", nil)
	if code != 202 {
		t.Fatalf("start a cleanup pass = %d %v", code, pass)
	}
	b.do("the cleanup passes", deployWait, goTo("#/cleanups"),
		until(`document.querySelector('#cleanups [data-id="`+pass["id"].(string)+`"] [data-state="success"]')`, deployWait))
	b.screenshot("cleanups")
}
