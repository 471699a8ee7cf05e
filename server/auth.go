package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"

	"github.com/nodeexec/nodeexec/api"
)

// Scope is what a token may do. Deploy includes read. Admin (running the operator's allow-listed
// commands on nodes) is its own: no other scope includes it, and it includes no other.
type Scope string

const (
	ScopeRead   Scope = "read"
	ScopeDeploy Scope = "deploy"
	ScopeAdmin  Scope = "admin"
)

// Token is one API client's bearer token and what it may do. Name is for logs; the secret never is.
type Token struct {
	Name   string  `yaml:"name"`
	Token  string  `yaml:"token"`
	Scopes []Scope `yaml:"scopes"`
}

// MinTokenLength is the shortest token a tokens file may hold. A token is a bearer secret sent with every
// request; 32 random characters are beyond guessing at any request rate (the README asks for 32+).
const MinTokenLength = 32

// LoadTokens reads the tokens file (YAML: a list of {name, token, scopes}). An empty path means no tokens.
// A file with problems is an error naming every one of them.
func LoadTokens(path string) ([]Token, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	var tokens []Token
	if err := yaml.Unmarshal(data, &tokens); err != nil {
		return nil, fmt.Errorf("tokens file %s: want a YAML list of {name, token, scopes}: %w", path, err)
	}
	var problems []string
	for i, t := range tokens {
		if t.Name == "" || len(t.Token) < MinTokenLength {
			problems = append(problems, fmt.Sprintf("entry %d needs a name and a token of at least %d characters (openssl rand -hex 32)", i+1, MinTokenLength))
		}
		for _, s := range t.Scopes {
			if s != ScopeRead && s != ScopeDeploy && s != ScopeAdmin {
				problems = append(problems, fmt.Sprintf("token %q: unknown scope %q (read, deploy, admin)", t.Name, s))
			}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("tokens file %s: %s", path, strings.Join(problems, "; "))
	}
	return tokens, nil
}

// authorizer checks bearer tokens; with no tokens configured every request passes (loopback only, which
// serve enforces).
type authorizer struct {
	// by the SHA-256 of the secret: compared in constant time, and the secret itself is not kept.
	tokens map[[32]byte]Token
}

func newAuthorizer(tokens []Token) *authorizer {
	a := &authorizer{tokens: make(map[[32]byte]Token, len(tokens))}
	for _, t := range tokens {
		a.tokens[sha256.Sum256([]byte(t.Token))] = Token{Name: t.Name, Scopes: t.Scopes}
	}
	return a
}

func (t Token) allows(want Scope) bool {
	for _, s := range t.Scopes {
		if s == want || s == ScopeDeploy && want == ScopeRead {
			return true
		}
	}
	return false
}

// require is the middleware for routes that need scope want: 401 without a known token, 403 with one
// that lacks the scope.
func (a *authorizer) require(want Scope) gin.HandlerFunc {
	return func(c *gin.Context) {
		if len(a.tokens) == 0 {
			c.Next()
			return
		}
		secret, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		if !ok || secret == "" {
			c.Header("WWW-Authenticate", `Bearer realm="nodeexec"`)
			fail(c, http.StatusUnauthorized, "unauthorized", "missing bearer token (Authorization: Bearer <token>)")
			return
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
		var found *Token
		for k, t := range a.tokens {
			if subtle.ConstantTimeCompare(k[:], sum[:]) == 1 {
				found = &t
			}
		}
		if found == nil {
			c.Header("WWW-Authenticate", `Bearer realm="nodeexec", error="invalid_token"`)
			fail(c, http.StatusUnauthorized, "unauthorized", "unknown bearer token")
			return
		}
		if !found.allows(want) {
			fail(c, http.StatusForbidden, "forbidden", fmt.Sprintf("token %q lacks the %s scope", found.Name, want))
			return
		}
		c.Set("token_name", found.Name)
		c.Set("token_scopes", found.Scopes)
		c.Next()
	}
}

// whoami tells a client what its own token may do (the web console shows the deploy buttons by it):
// the token's name and scopes, never the token. Without tokens configured every request may do all.
func whoami(c *gin.Context) {
	scopes, auth := c.Get("token_scopes")
	t := Token{Name: c.GetString("token_name")}
	t.Scopes, _ = scopes.([]Scope)
	if !auth {
		t.Scopes = []Scope{ScopeRead, ScopeDeploy, ScopeAdmin}
	}
	out := api.Whoami{Name: t.Name, Scope: string(ScopeRead), Auth: auth, Scopes: []string{}}
	if t.allows(ScopeDeploy) {
		out.Scope = string(ScopeDeploy)
	}
	for _, s := range t.Scopes {
		out.Scopes = append(out.Scopes, string(s))
	}
	c.JSON(http.StatusOK, out)
}
