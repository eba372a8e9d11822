// Package alert is the alert engine of the control plane: it evaluates the
// alert rules against the metric samples it is handed (Observe) and, on a
// timer, against the VMs and nodes in the store, opens and resolves alerts,
// publishes their changes on the event bus and calls the rules' webhooks.
// It also serves the rules and alerts of the API.
//
// Evaluation runs on one goroutine: Observe hands samples over without
// waiting, and drops them (with a log line) when the engine falls behind.
// A metric alert fires once its condition has held for the rule's "for";
// it resolves once the value has been clear of the threshold by a margin
// (Config.Margin) for Config.ResolveAfter, or when its resource has sent no
// measured value for Config.StaleAfter (a stopped VM). Event conditions
// (vm_failed, node_offline) are read from the store on every tick and
// resolve the same way, or at once when their resource is gone.
package alert

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/events"
)

// Store is what the engine reads and writes: rules and alerts, and the
// VMs and nodes whose state event conditions watch.
type Store interface {
	novacron.AlertStore
	ListVMs(ctx context.Context, scope novacron.Scope, f novacron.VMFilter) ([]*novacron.VM, string, error)
	ListNodes(ctx context.Context, page novacron.Page) ([]*novacron.Node, string, error)
	GetSetting(ctx context.Context, key string) (string, error)
	SetSettingIfAbsent(ctx context.Context, key, value string) (string, error)
}

// Config configures the engine. Zero fields take the defaults.
type Config struct {
	// Interval is how often the engine evaluates without samples:
	// event conditions, and resources that stopped reporting (default 15s).
	Interval time.Duration
	// ResolveAfter is how long a condition must stay clear before its
	// alert resolves (default 1m).
	ResolveAfter time.Duration
	// StaleAfter is how long a resource may send no measured value before
	// its metric alerts resolve (default 3m).
	StaleAfter time.Duration
	// Margin is the fraction of the threshold by which a value must be
	// clear of it to count as clear (default 0.05: 90 % clears below 85.5 %).
	Margin float64
	// QueueSize bounds the sample batches waiting for the engine (default 64).
	QueueSize int

	// WebhookSecret signs every webhook call (HMAC-SHA256 of the body).
	WebhookSecret []byte
	// WebhookAllow are the addresses webhooks may reach although they are
	// loopback, private or link-local.
	WebhookAllow []netip.Prefix
	// WebhookQueue bounds the calls waiting to be made (default 256).
	WebhookQueue int
	// WebhookAttempts is how often a call is tried (default 5), waiting
	// WebhookBackoff (default 1s), doubling, between tries.
	WebhookAttempts int
	WebhookBackoff  time.Duration
	// WebhookTimeout bounds one try (default 10s).
	WebhookTimeout time.Duration

	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = 15 * time.Second
	}
	if c.ResolveAfter <= 0 {
		c.ResolveAfter = time.Minute
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = 3 * time.Minute
	}
	if c.Margin <= 0 {
		c.Margin = 0.05
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 64
	}
	if c.WebhookQueue <= 0 {
		c.WebhookQueue = 256
	}
	if c.WebhookAttempts <= 0 {
		c.WebhookAttempts = 5
	}
	if c.WebhookBackoff <= 0 {
		c.WebhookBackoff = time.Second
	}
	if c.WebhookTimeout <= 0 {
		c.WebhookTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Engine evaluates alert rules. Its methods are safe for concurrent use.
type Engine struct {
	cfg    Config
	store  Store
	bus    *events.Bus
	log    *slog.Logger
	notify *notifier

	samples chan batch
	reload  chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
	started atomic.Bool
	closed  sync.Once
	dropped atomic.Int64

	// Owned by the evaluating goroutine (or a test driving it).
	rules  map[string]*novacron.AlertRule
	series map[seriesKey]*series
	vms    map[string]*novacron.VM
	nodes  map[string]*novacron.Node
}

type batch struct {
	hosts []novacron.HostSample
	vms   []novacron.VMSample
}

// seriesKey names what one alert is about: a rule and a resource.
type seriesKey struct {
	rule, resource, id string
}

// series is the evaluation state of a rule on one resource.
type series struct {
	key seriesKey
	// pendingSince is when the condition began to hold (zero: it does not).
	pendingSince time.Time
	// clearSince is when an open alert's condition began to be clear.
	clearSince time.Time
	// lastSeen is when a measured value (or the resource) was last seen.
	lastSeen time.Time
	value    *float64
	alert    *novacron.Alert
	// tenant and labels of the resource, for a new alert.
	tenant string
	labels map[string]string
	what   string
}

// New returns an engine over the store. bus may be nil. Start begins the
// evaluation.
func New(st Store, cfg Config, bus *events.Bus, log *slog.Logger) *Engine {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg:     cfg,
		store:   st,
		bus:     bus,
		log:     log,
		samples: make(chan batch, cfg.QueueSize),
		reload:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
		rules:   map[string]*novacron.AlertRule{},
		series:  map[seriesKey]*series{},
		vms:     map[string]*novacron.VM{},
		nodes:   map[string]*novacron.Node{},
	}
	e.notify = newNotifier(cfg, log)
	return e
}

// Start creates the default rules on the first start of the database,
// loads the rules and open alerts, and starts the evaluating goroutine and
// the webhook workers. Close stops them.
func (e *Engine) Start(ctx context.Context) error {
	if err := EnsureDefaultRules(ctx, e.store); err != nil {
		return err
	}
	if err := e.load(ctx); err != nil {
		return err
	}
	e.started.Store(true)
	e.notify.start(e.stop, &e.wg)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.run()
	}()
	return nil
}

// Close stops the engine and waits for its goroutines; webhook calls in
// flight are abandoned. It is safe to call more than once.
func (e *Engine) Close() {
	e.closed.Do(func() {
		close(e.stop)
		e.wg.Wait()
	})
}

// Observe hands a batch of samples to the engine, without waiting: when
// the engine is behind by more than its queue, the batch is dropped and
// logged. The engine keeps the samples (and the values they point to),
// which the caller must not change afterwards. It is the metrics service's
// ingest observer.
func (e *Engine) Observe(hosts []novacron.HostSample, vms []novacron.VMSample) {
	if len(hosts) == 0 && len(vms) == 0 {
		return
	}
	b := batch{hosts: slices.Clone(hosts), vms: slices.Clone(vms)}
	select {
	case e.samples <- b:
	default:
		// The first drop, then every hundredth: a flood of log lines would
		// only slow the engine further.
		if n := e.dropped.Add(1); n%100 == 1 {
			e.log.Warn("alert engine is behind: samples dropped", "hosts", len(hosts), "vms", len(vms), "dropped_total", n)
		}
	}
}

// Counts returns the number of alerts in each status, for /metrics.
func (e *Engine) Counts(ctx context.Context) (map[string]int, error) {
	return e.store.CountAlerts(ctx)
}

// kick asks the engine to reload its rules.
func (e *Engine) kick() {
	select {
	case e.reload <- struct{}{}:
	default:
	}
}

func (e *Engine) run() {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case b := <-e.samples:
			ctx, cancel := e.opContext()
			e.observe(ctx, b)
			cancel()
		case <-e.reload:
			ctx, cancel := e.opContext()
			if err := e.loadRules(ctx); err != nil {
				e.log.Error("load alert rules", "err", err)
			}
			cancel()
		case <-t.C:
			ctx, cancel := e.opContext()
			e.tick(ctx)
			cancel()
		}
	}
}

// opContext bounds one round of evaluation and ends with the engine.
func (e *Engine) opContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	go func() {
		select {
		case <-e.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// load reads the rules and the open alerts: an open alert whose rule is
// gone or disabled is resolved; the others are evaluated again from now.
func (e *Engine) load(ctx context.Context) error {
	if err := e.loadRules(ctx); err != nil {
		return err
	}
	e.refreshVMs(ctx)
	e.refreshNodes(ctx)
	now := e.cfg.Now()
	cursor := ""
	var orphans []*novacron.Alert
	for {
		alerts, next, err := e.store.ListAlerts(ctx, novacron.AllTenants, novacron.AlertFilter{
			Page: novacron.Page{Limit: 500, Cursor: cursor}, Open: true})
		if err != nil {
			return fmt.Errorf("alert: load open alerts: %w", err)
		}
		for _, a := range alerts {
			r := e.rules[a.RuleID]
			if r == nil {
				orphans = append(orphans, a)
				continue
			}
			k := seriesKey{r.ID, a.Resource, a.ResourceID}
			e.series[k] = &series{key: k, lastSeen: now, pendingSince: a.StartTime, alert: a, value: a.CurrentValue,
				tenant: a.TenantID, labels: a.Labels}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	for _, a := range orphans {
		e.resolve(ctx, nil, &series{alert: a, value: a.CurrentValue}, now)
	}
	return nil
}

// loadRules reads the enabled rules. The open alerts of a rule that is
// gone or disabled are resolved; a changed rule starts its pending
// conditions again.
func (e *Engine) loadRules(ctx context.Context) error {
	rules := map[string]*novacron.AlertRule{}
	cursor := ""
	for {
		page, next, err := e.store.ListAlertRules(ctx, novacron.AllTenants, novacron.Page{Limit: 500, Cursor: cursor})
		if err != nil {
			return fmt.Errorf("alert: load rules: %w", err)
		}
		for _, r := range page {
			if r.Enabled {
				rules[r.ID] = r
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	now := e.cfg.Now()
	for k, s := range e.series {
		r, old := rules[k.rule], e.rules[k.rule]
		switch {
		case r == nil:
			if s.alert != nil {
				e.resolve(ctx, old, s, now)
			}
			delete(e.series, k)
		case old != nil && !r.UpdatedAt.Equal(old.UpdatedAt) && s.alert == nil:
			s.pendingSince = time.Time{}
		}
	}
	e.rules = rules
	return nil
}

// observe evaluates the metric rules against a batch of samples.
func (e *Engine) observe(ctx context.Context, b batch) {
	now := e.cfg.Now()
	for _, r := range e.sortedRules() {
		m, _ := novacron.LookupAlertMetric(r.Metric)
		if m.Event {
			continue
		}
		switch r.Resource {
		case novacron.ResourceHost:
			for i := range b.hosts {
				h := &b.hosts[i]
				v := novacron.HostValue(&h.HostPoint, r.Metric)
				if v == nil || !e.hostInScope(r, h.NodeID) {
					continue
				}
				s := e.seriesOf(r, novacron.ResourceHost, h.NodeID)
				s.tenant, s.labels, s.what = "", e.nodeLabels(h.NodeID), "host "+e.nodeName(h.NodeID)
				e.evaluateValue(ctx, r, s, *v, now)
			}
		case novacron.ResourceVM:
			for i := range b.vms {
				vs := &b.vms[i]
				v := novacron.VMValue(&vs.VMPoint, r.Metric)
				tenant, node := vs.TenantID, vs.NodeID
				if vm := e.vms[vs.VMID]; vm != nil {
					// The sample's tenant and node, else the VM's as last read.
					tenant, node = cmp.Or(tenant, vm.TenantID), cmp.Or(node, vm.NodeID)
				}
				if v == nil || !e.vmInScope(r, vs.VMID, tenant, node) {
					continue
				}
				s := e.seriesOf(r, novacron.ResourceVM, vs.VMID)
				s.tenant, s.labels, s.what = tenant, e.vmLabels(vs.VMID), "VM "+e.vmName(vs.VMID)
				e.evaluateValue(ctx, r, s, *v, now)
			}
		}
	}
}

func (e *Engine) sortedRules() []*novacron.AlertRule {
	ids := slices.Sorted(maps.Keys(e.rules))
	out := make([]*novacron.AlertRule, len(ids))
	for i, id := range ids {
		out[i] = e.rules[id]
	}
	return out
}

func (e *Engine) seriesOf(r *novacron.AlertRule, resource, id string) *series {
	k := seriesKey{r.ID, resource, id}
	s := e.series[k]
	if s == nil {
		s = &series{key: k}
		e.series[k] = s
	}
	return s
}

// evaluateValue moves a metric series on with a measured value.
func (e *Engine) evaluateValue(ctx context.Context, r *novacron.AlertRule, s *series, v float64, now time.Time) {
	s.lastSeen, s.value = now, &v
	breach := novacron.Compare(r.Comparator, v, r.Threshold)
	margin := e.cfg.Margin * math.Abs(r.Threshold)
	var clear bool
	switch r.Comparator {
	case ">", ">=":
		clear = v < r.Threshold-margin
	default:
		clear = v > r.Threshold+margin
	}
	e.step(ctx, r, s, breach, clear, now)
}

// step is the state machine of a series: pending, firing, resolving.
func (e *Engine) step(ctx context.Context, r *novacron.AlertRule, s *series, breach, clear bool, now time.Time) {
	if s.alert == nil {
		if !breach {
			s.pendingSince = time.Time{}
			return
		}
		if s.pendingSince.IsZero() {
			s.pendingSince = now
		}
		if now.Sub(s.pendingSince) >= r.For {
			e.fire(ctx, r, s, now)
		}
		return
	}
	if !clear {
		s.clearSince = time.Time{}
		return
	}
	if s.clearSince.IsZero() {
		s.clearSince = now
	}
	if now.Sub(s.clearSince) >= e.cfg.ResolveAfter {
		e.resolve(ctx, r, s, now)
	}
}

// tick reloads the rules, refreshes the VMs and nodes, evaluates the event conditions and
// resolves the metric alerts of resources that stopped reporting.
func (e *Engine) tick(ctx context.Context) {
	// Rules also change without the API (a deleted tenant takes its
	// rules along, another replica writes): read them again.
	if err := e.loadRules(ctx); err != nil {
		e.log.Error("load alert rules", "err", err)
	}
	now := e.cfg.Now()
	vmsOK, nodesOK := e.refreshVMs(ctx), e.refreshNodes(ctx)
	for _, r := range e.sortedRules() {
		switch {
		case r.Metric == novacron.MetricVMFailed && vmsOK:
			e.evaluateEvent(ctx, r, now, novacron.ResourceVM, e.vmEvents(r))
		case r.Metric == novacron.MetricNodeOffline && nodesOK:
			e.evaluateEvent(ctx, r, now, novacron.ResourceHost, e.nodeEvents(r))
		}
	}
	for k, s := range e.series {
		r := e.rules[k.rule]
		if r == nil {
			continue
		}
		if m, _ := novacron.LookupAlertMetric(r.Metric); m.Event {
			continue
		}
		if now.Sub(s.lastSeen) < e.cfg.StaleAfter {
			continue
		}
		if s.alert != nil {
			e.log.Info("alert resolved: its resource stopped reporting", "alert_id", s.alert.ID, "rule", r.Name)
			e.resolve(ctx, r, s, now)
		}
		delete(e.series, k)
	}
}

// eventState is one resource's state for an event condition.
type eventState struct {
	holds  bool
	tenant string
	labels map[string]string
	what   string
}

func (e *Engine) vmEvents(r *novacron.AlertRule) map[string]eventState {
	out := map[string]eventState{}
	for id, vm := range e.vms {
		if !e.vmInScope(r, id, vm.TenantID, vm.NodeID) {
			continue
		}
		what := "VM " + vm.Name + " is failed"
		if vm.StateReason != "" {
			what += ": " + vm.StateReason
		}
		out[id] = eventState{holds: vm.State == novacron.StateFailed, tenant: vm.TenantID,
			labels: map[string]string{"vm_name": vm.Name}, what: what}
	}
	return out
}

func (e *Engine) nodeEvents(r *novacron.AlertRule) map[string]eventState {
	out := map[string]eventState{}
	for id, n := range e.nodes {
		if !e.hostInScope(r, id) {
			continue
		}
		out[id] = eventState{holds: n.Status == novacron.NodeOffline, labels: map[string]string{"node_name": n.Name},
			what: "node " + n.Name + " is offline"}
	}
	return out
}

// evaluateEvent moves the series of an event rule on: the resources in
// states, and those of its series that are gone (resolved at once).
func (e *Engine) evaluateEvent(ctx context.Context, r *novacron.AlertRule, now time.Time, resource string, states map[string]eventState) {
	for _, id := range slices.Sorted(maps.Keys(states)) {
		st := states[id]
		k := seriesKey{r.ID, resource, id}
		s := e.series[k]
		if s == nil {
			if !st.holds {
				continue
			}
			s = &series{key: k}
			e.series[k] = s
		}
		s.lastSeen, s.tenant, s.labels, s.what = now, st.tenant, st.labels, st.what
		e.step(ctx, r, s, st.holds, !st.holds, now)
		if s.alert == nil && s.pendingSince.IsZero() {
			delete(e.series, k)
		}
	}
	for k, s := range e.series {
		if k.rule != r.ID {
			continue
		}
		if _, ok := states[k.id]; ok {
			continue
		}
		if s.alert != nil {
			e.resolve(ctx, r, s, now)
		}
		delete(e.series, k)
	}
}

// fire opens the series' alert.
func (e *Engine) fire(ctx context.Context, r *novacron.AlertRule, s *series, now time.Time) {
	m, _ := novacron.LookupAlertMetric(r.Metric)
	var desc string
	var value *float64
	if m.Event {
		desc = s.what
	} else {
		v := *s.value
		value = &v
		desc = fmt.Sprintf("%s of %s is %s (%s %s for %s)", r.Metric, s.what, strconv.FormatFloat(v, 'f', -1, 64),
			r.Comparator, strconv.FormatFloat(r.Threshold, 'f', -1, 64), r.For)
	}
	k := s.key
	a := &novacron.Alert{RuleID: r.ID, Name: r.Name, Description: desc, Severity: r.Severity, Resource: k.resource,
		ResourceID: k.id, TenantID: s.tenant, MetricName: r.Metric, Threshold: r.Threshold, CurrentValue: value,
		Labels: s.labels, StartTime: now}
	if err := e.store.OpenAlert(ctx, a); err != nil {
		if novacron.IsCode(err, novacron.EConflict) {
			e.log.Warn("alert already open", "rule", r.Name, "resource", k.resource, "resource_id", k.id)
		} else {
			e.log.Error("open alert", "rule", r.Name, "err", err)
		}
		return
	}
	s.alert, s.clearSince = a, time.Time{}
	e.log.Info("alert firing", "alert_id", a.ID, "rule", r.Name, "resource", a.Resource, "resource_id", a.ResourceID)
	e.changed(r, a)
}

// resolve resolves the series' open alert. r is nil when the rule is gone.
func (e *Engine) resolve(ctx context.Context, r *novacron.AlertRule, s *series, now time.Time) {
	a, err := e.store.ResolveAlert(ctx, s.alert.ID, now, s.value)
	switch {
	case novacron.IsCode(err, novacron.EInvalidState), novacron.IsCode(err, novacron.ENotFound):
		// Resolved (or deleted) elsewhere meanwhile.
	case err != nil:
		e.log.Error("resolve alert", "alert_id", s.alert.ID, "err", err)
		return
	default:
		e.log.Info("alert resolved", "alert_id", a.ID, "name", a.Name, "resource", a.Resource, "resource_id", a.ResourceID)
		e.changed(r, a)
	}
	s.alert, s.pendingSince, s.clearSince = nil, time.Time{}, time.Time{}
}

// changed publishes an alert's new status and calls its rule's webhook.
func (e *Engine) changed(r *novacron.AlertRule, a *novacron.Alert) {
	e.publish(a)
	if r != nil && r.WebhookURL != "" && a.Status != novacron.AlertAcknowledged {
		e.notify.enqueue(r.WebhookURL, a)
	}
}

func (e *Engine) publish(a *novacron.Alert) {
	ev := events.Event{Type: events.TypeAlert, TenantID: a.TenantID, Data: a}
	if a.Resource == novacron.ResourceVM {
		ev.VMID = a.ResourceID
	}
	e.bus.Publish(ev)
}

// refreshVMs reloads every VM; it reports whether it could.
func (e *Engine) refreshVMs(ctx context.Context) bool {
	vms := map[string]*novacron.VM{}
	cursor := ""
	for {
		page, next, err := e.store.ListVMs(ctx, novacron.AllTenants, novacron.VMFilter{Page: novacron.Page{Limit: 500, Cursor: cursor}})
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				e.log.Error("alert engine: list VMs", "err", err)
			}
			return false
		}
		for _, vm := range page {
			vms[vm.ID] = vm
		}
		if next == "" {
			break
		}
		cursor = next
	}
	e.vms = vms
	return true
}

// refreshNodes reloads every node; it reports whether it could.
func (e *Engine) refreshNodes(ctx context.Context) bool {
	nodes := map[string]*novacron.Node{}
	cursor := ""
	for {
		page, next, err := e.store.ListNodes(ctx, novacron.Page{Limit: 500, Cursor: cursor})
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				e.log.Error("alert engine: list nodes", "err", err)
			}
			return false
		}
		for _, n := range page {
			nodes[n.ID] = n
		}
		if next == "" {
			break
		}
		cursor = next
	}
	e.nodes = nodes
	return true
}

func (e *Engine) hostInScope(r *novacron.AlertRule, nodeID string) bool {
	sc := r.Scope
	if sc.NodeID != "" && sc.NodeID != nodeID {
		return false
	}
	if len(sc.Labels) > 0 {
		n := e.nodes[nodeID]
		return n != nil && labelsMatch(sc.Labels, n.Labels)
	}
	return true
}

func (e *Engine) vmInScope(r *novacron.AlertRule, vmID, tenantID, nodeID string) bool {
	sc := r.Scope
	switch {
	case sc.TenantID != "" && sc.TenantID != tenantID,
		sc.NodeID != "" && sc.NodeID != nodeID,
		sc.VMID != "" && sc.VMID != vmID:
		return false
	}
	if len(sc.Labels) > 0 {
		vm := e.vms[vmID]
		return vm != nil && labelsMatch(sc.Labels, vm.Labels)
	}
	return true
}

func labelsMatch(want, have map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func (e *Engine) vmName(id string) string {
	if vm := e.vms[id]; vm != nil {
		return vm.Name
	}
	return id
}

func (e *Engine) vmLabels(id string) map[string]string {
	if vm := e.vms[id]; vm != nil {
		return map[string]string{"vm_name": vm.Name}
	}
	return nil
}

func (e *Engine) nodeName(id string) string {
	if n := e.nodes[id]; n != nil {
		return n.Name
	}
	return id
}

func (e *Engine) nodeLabels(id string) map[string]string {
	if n := e.nodes[id]; n != nil {
		return map[string]string{"node_name": n.Name}
	}
	return nil
}
