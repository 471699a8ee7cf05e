package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/api"
)

// whoami needs no store: it answers from the token alone.
func whoamiAs(t *testing.T, tokens []Token, bearer string) (int, api.Whoami, string) {
	t.Helper()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	req := httptest.NewRequest("GET", "/api/v1/whoami", nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	rec := httptest.NewRecorder()
	New(Config{Logger: quiet, Tokens: tokens}).Handler().ServeHTTP(rec, req)
	var out api.Whoami
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out, rec.Body.String()
}

func TestWhoamiNamesTheScopeAndNeverEchoesTheToken(t *testing.T) {
	tokens := []Token{{Name: "dashboard", Token: "read-token-0123456789-abcdefghijkl", Scopes: []Scope{ScopeRead}},
		{Name: "plan-layer", Token: "deploy-token-0123456789-abcdefghij", Scopes: []Scope{ScopeDeploy, ScopeAdmin}},
		{Name: "oncall", Token: "admin-token-0123456789-abcdefghijk", Scopes: []Scope{ScopeAdmin}}}
	for _, c := range []struct {
		token      string
		wantCode   int
		wantName   string
		wantScope  string
		wantScopes string
	}{
		{tokens[0].Token, 200, "dashboard", "read", "read"},
		{tokens[1].Token, 200, "plan-layer", "deploy", "deploy,admin"},
		{tokens[2].Token, 403, "", "", ""}, // admin alone reads nothing, so the console has nothing to show it
		{"wrong-token-0123456789-abcdefghijk", 401, "", "", ""},
		{"", 401, "", "", ""},
	} {
		code, got, body := whoamiAs(t, tokens, c.token)
		if code != c.wantCode || got.Name != c.wantName || got.Scope != c.wantScope || strings.Join(got.Scopes, ",") != c.wantScopes {
			t.Errorf("whoami with %q = %d %s, want %d name %q scope %q scopes %q", c.token, code, body, c.wantCode, c.wantName, c.wantScope, c.wantScopes)
		}
		if code == 200 && !got.Auth {
			t.Errorf("whoami with %q says auth is off: %s", c.token, body)
		}
		if c.token != "" && strings.Contains(body, c.token) {
			t.Errorf("whoami echoes the token: %s", body)
		}
	}
}

func TestWhoamiWithoutTokensSaysAuthIsOffAndAllowsDeploy(t *testing.T) {
	code, got, body := whoamiAs(t, nil, "")
	if code != http.StatusOK || got.Auth || got.Scope != "deploy" || got.Name != "" {
		t.Errorf("whoami without tokens = %d %s, want 200 auth false scope deploy", code, body)
	}
}
