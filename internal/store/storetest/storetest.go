// Package storetest is the conformance suite of novacron.Store and
// novacron.VMStore: every implementation runs Run against a fresh database
// and must pass it whole, so that the SQLite and PostgreSQL stores behave
// the same.
package storetest

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/novacron/novacron"
)

// Store is what an implementation provides: the control plane store, the
// VM store (and its counter) and the image store.
type Store interface {
	novacron.Store
	novacron.VMStore
	novacron.VMCounter
	novacron.ImageStore
	novacron.AlertStore
	novacron.MetricsStore
}

// Run runs the conformance suite. open returns a new store on an empty,
// migrated database for each subtest; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"Ping", testPing},
		{"MalformedIDs", testMalformedIDs},
		{"Tenant/CreateGet", testTenantCreateGet},
		{"Tenant/CreateInvalid", testTenantCreateInvalid},
		{"Tenant/NameConflict", testTenantNameConflict},
		{"Tenant/Scope", testTenantScope},
		{"Tenant/Update", testTenantUpdate},
		{"Tenant/Delete", testTenantDelete},
		{"Tenant/List", testTenantList},
		{"User/CreateGet", testUserCreateGet},
		{"User/CreateInvalid", testUserCreateInvalid},
		{"User/UsernameConflict", testUserUsernameConflict},
		{"User/Scope", testUserScope},
		{"User/Update", testUserUpdate},
		{"User/Delete", testUserDelete},
		{"User/List", testUserList},
		{"User/Count", testUserCount},
		{"Session/CreateGet", testSessionCreateGet},
		{"Session/CreateInvalid", testSessionCreateInvalid},
		{"Session/List", testSessionList},
		{"Session/Revoke", testSessionRevoke},
		{"Session/RevokeUser", testSessionRevokeUser},
		{"Session/Prune", testSessionPrune},
		{"Audit/InsertList", testAuditInsertList},
		{"Audit/Filters", testAuditFilters},
		{"Audit/Pages", testAuditPages},
		{"Audit/Prune", testAuditPrune},
		{"Setting", testSetting},
		{"Setting/Concurrent", testSettingConcurrent},
		{"VM/CreateGet", testVMCreateGet},
		{"VM/CreateInvalid", testVMCreateInvalid},
		{"VM/NameConflict", testVMNameConflict},
		{"VM/Quotas", testVMQuotas},
		{"VM/GetByName", testVMGetByName},
		{"VM/List", testVMList},
		{"VM/UpdateSpec", testVMUpdateSpec},
		{"VM/BeginOperation", testVMBeginOperation},
		{"VM/SetState", testVMSetState},
		{"VM/ObserveState", testVMObserveState},
		{"VM/Delete", testVMDelete},
		{"VM/NodeStatus", testVMNodeStatus},
		{"VM/CountByState", testVMCountByState},
		{"Operation/List", testOperationList},
		{"Operation/Finish", testOperationFinish},
		{"Node/Upsert", testNodeUpsert},
		{"Node/List", testNodeList},
		{"Image/CreateGet", testImageCreateGet},
		{"Image/CreateInvalid", testImageCreateInvalid},
		{"Image/Command", testImageCommand},
		{"Image/Quota", testImageQuota},
		{"Image/List", testImageList},
		{"Image/Delete", testImageDelete},
		{"Image/DeleteInUse", testImageDeleteInUse},
		{"Image/DeleteRace", testImageDeleteRace},
		{"Alert/RuleCRUD", testAlertRuleCRUD},
		{"Alert/RuleInvalid", testAlertRuleInvalid},
		{"Alert/Lifecycle", testAlertLifecycle},
		{"Concurrent/AlertOpen", testAlertOpenRace},
		{"Metrics/Chunks", testMetricChunks},
		{"Metrics/Latest", testMetricLatest},
		{"Metrics/Concurrent", testMetricConcurrent},
		{"Concurrent/VMQuota", testVMQuotaRace},
		{"Concurrent/BeginOperation", testVMBeginRace},
		{"Concurrent/Writers", testConcurrentWriters},
		{"Concurrent/ReadWrite", testConcurrentReadWrite},
		{"Concurrent/Burst", testConcurrentBurst},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// missingID is a well-formed id that no store row has.
const missingID = "01890000-0000-7000-8000-000000000000"

// malformedIDs are ids that no store may send to its database.
var malformedIDs = []string{"", "42", "not-a-uuid", "01890000-0000-7000-8000-00000000000", "' OR 1=1 --",
	"01890000-0000-7000-8000-00000000000z"}

// sqlWords must not appear in an error's client message.
var sqlWords = []string{"sql", "SQL", "UNIQUE", "constraint", "INSERT", "SELECT", "UPDATE", "DELETE",
	"duplicate key", "violates", "tenants.", "users.", "sessions."}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// wantCode fails unless err carries code and a client message free of SQL.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := novacron.ErrorCode(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
	msg := novacron.ErrorMessage(err)
	for _, w := range sqlWords {
		if strings.Contains(msg, w) {
			t.Errorf("error message %q contains %q", msg, w)
		}
	}
}

// wantMessage fails unless err is coded code with the given message.
func wantMessage(t *testing.T, err error, code, msg string) {
	t.Helper()
	wantCode(t, err, code)
	if got := novacron.ErrorMessage(err); got != msg {
		t.Errorf("error message = %q, want %q", got, msg)
	}
}

func noErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wantID fails unless id is a canonical UUIDv7.
func wantID(t *testing.T, id string) {
	t.Helper()
	u, err := uuid.Parse(id)
	if err != nil || u.String() != id || u.Version() != 7 {
		t.Fatalf("id %q is not a canonical UUIDv7 (err %v)", id, err)
	}
}

// wantStoreTime fails unless tm is UTC, in microseconds, and within
// [from, to] once from is truncated like the stores truncate.
func wantStoreTime(t *testing.T, what string, tm, from, to time.Time) {
	t.Helper()
	if tm.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, tm.Location())
	}
	if tm.Nanosecond()%1000 != 0 {
		t.Errorf("%s = %v has sub-microsecond digits", what, tm)
	}
	if tm.Before(from.Truncate(time.Microsecond)) || tm.After(to) {
		t.Errorf("%s = %v, want within [%v, %v]", what, tm, from, to)
	}
}

func wantEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, deref(got), deref(want))
	}
}

// deref makes pointers and slices of pointers print their values.
func deref(v any) any {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return v
		}
		return rv.Elem().Interface()
	case reflect.Slice:
		var out []any
		for i := 0; i < rv.Len(); i++ {
			out = append(out, deref(rv.Index(i).Interface()))
		}
		return out
	}
	return v
}

func ptr[T any](v T) *T { return &v }

func mustTenant(t *testing.T, s novacron.Store, name string) *novacron.Tenant {
	t.Helper()
	tn := &novacron.Tenant{Name: name}
	noErr(t, s.CreateTenant(ctx(t), tn), "CreateTenant "+name)
	return tn
}

func mustUser(t *testing.T, s novacron.Store, tenantID, username string, role novacron.Role) *novacron.User {
	t.Helper()
	u := &novacron.User{Username: username, Email: username + "@example.com", Role: role,
		TenantID: tenantID, PasswordHash: "hash-of-" + username}
	noErr(t, s.CreateUser(ctx(t), u), "CreateUser "+username)
	return u
}

func mustSession(t *testing.T, s novacron.Store, userID string, kind novacron.SessionKind, tokenHash string, expires time.Time) *novacron.Session {
	t.Helper()
	sess := &novacron.Session{UserID: userID, Kind: kind, TokenHash: tokenHash, ExpiresAt: expires,
		Name: "n-" + tokenHash, IP: "192.0.2.1", UserAgent: "storetest"}
	noErr(t, s.CreateSession(ctx(t), sess), "CreateSession")
	return sess
}

// collect lists every page of a list with the given limit and returns the
// ids in the order the pages gave them. It fails on a page longer than
// limit, on a short page that has a next cursor and on a full page count
// that disagrees with wantPages.
func collect[T any](t *testing.T, limit, wantPages int, list func(cursor string) ([]*T, string, error), id func(*T) string) []string {
	t.Helper()
	out := []string{}
	cursor := ""
	for pages := 1; ; pages++ {
		items, next, err := list(cursor)
		noErr(t, err, fmt.Sprintf("list page %d", pages))
		if len(items) > limit {
			t.Fatalf("page %d has %d items, limit %d", pages, len(items), limit)
		}
		for _, it := range items {
			out = append(out, id(it))
		}
		if next == "" {
			if pages != wantPages {
				t.Fatalf("got %d pages, want %d", pages, wantPages)
			}
			return out
		}
		if len(items) != limit {
			t.Fatalf("page %d has %d items and a next cursor, want %d", pages, len(items), limit)
		}
		if next == cursor {
			t.Fatalf("page %d returned its own cursor %q", pages, next)
		}
		if pages > 1000 {
			t.Fatal("pagination does not end")
		}
		cursor = next
	}
}

func tenantID(t *novacron.Tenant) string    { return t.ID }
func userID(u *novacron.User) string        { return u.ID }
func sessionID(s *novacron.Session) string  { return s.ID }
func auditID(e *novacron.AuditEntry) string { return e.ID }

// reversed returns a reversed copy of s.
func reversed(s []string) []string {
	r := make([]string, len(s))
	for i, v := range s {
		r[len(s)-1-i] = v
	}
	return r
}

func ids[T any](items []*T, id func(*T) string) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}
