package domain

import (
	"slices"
	"strings"
)

// ScopeAdmin implies every scope and lets its holder act on any account.
const ScopeAdmin = "admin"

// Management scopes guard Tollgate's own API.
const (
	ScopeAccountsRead       = "accounts:read"
	ScopeKeysRead           = "keys:read"
	ScopeKeysWrite          = "keys:write"
	ScopeTokensRead         = "tokens:read"
	ScopeTokensWrite        = "tokens:write"
	ScopeTokensVerify       = "tokens:verify"
	ScopeTokensIntrospect   = "tokens:introspect"
	ScopeClientsRead        = "clients:read"
	ScopeClientsWrite       = "clients:write"
	ScopeWalletRead         = "wallet:read"
	ScopeWalletWrite        = "wallet:write"
	ScopeStatsRead          = "stats:read"
	ScopeSubscriptionsRead  = "subscriptions:read"
	ScopeSubscriptionsWrite = "subscriptions:write"
	ScopeCallbacksRead      = "callbacks:read"
	ScopeCallbacksWrite     = "callbacks:write"
	ScopeErrorsRead         = "errors:read"
	ScopeUsersRead          = "users:read"
	ScopeUsersWrite         = "users:write"
	ScopeScopesRead         = "scopes:read"
)

// ManagementScopes lists every scope of Tollgate's own API except admin.
func ManagementScopes() []string {
	return []string{
		ScopeAccountsRead, ScopeKeysRead, ScopeKeysWrite,
		ScopeTokensRead, ScopeTokensWrite, ScopeTokensVerify, ScopeTokensIntrospect,
		ScopeClientsRead, ScopeClientsWrite, ScopeWalletRead, ScopeWalletWrite,
		ScopeStatsRead, ScopeSubscriptionsRead, ScopeSubscriptionsWrite,
		ScopeCallbacksRead, ScopeCallbacksWrite, ScopeErrorsRead,
		ScopeUsersRead, ScopeUsersWrite, ScopeScopesRead,
	}
}

// FirstKeyScopes are the scopes of a new account's first key: every scope
// known to the account except admin and wallet:write (credit comes from
// the operator). extra adds catalog scopes.
func FirstKeyScopes(extra ...string) []string {
	var out []string
	for _, s := range append(ManagementScopes(), extra...) {
		if s != ScopeAdmin && s != ScopeWalletWrite && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// HasScope reports whether held grants required. admin grants everything.
func HasScope(held []string, required string) bool {
	for _, h := range held {
		if h == required || h == ScopeAdmin {
			return true
		}
	}
	return false
}

// ValidScopeName reports whether s is a well-formed scope name: lower-case
// segments of letters, digits, '_', '-' and '.' joined by ':'.
func ValidScopeName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, seg := range strings.Split(s, ":") {
		if seg == "" {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
				return false
			}
		}
	}
	return true
}

// normalizeScopes sorts and removes duplicates.
func normalizeScopes(scopes []string) []string {
	out := slices.Clone(scopes)
	slices.Sort(out)
	return slices.Compact(out)
}
