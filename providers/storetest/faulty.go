package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/drflow/drflow/providers"
)

// Method names a providers.Store method that Faulty injects faults into.
type Method string

// The methods of providers.Store that Faulty intercepts. Capabilities and Location are passed
// through (see Faulty.SetCapabilities).
const (
	MethodPut          Method = "Put"
	MethodGet          Method = "Get"
	MethodStat         Method = "Stat"
	MethodList         Method = "List"
	MethodDelete       Method = "Delete"
	MethodSetLegalHold Method = "SetLegalHold"
	MethodSetRetention Method = "SetRetention"
)

// allMethods lists every Method, in the order of the providers.Store interface.
var allMethods = []Method{MethodPut, MethodGet, MethodStat, MethodList, MethodDelete, MethodSetLegalHold, MethodSetRetention}

// mutations are the methods that change the store.
var mutations = []Method{MethodPut, MethodDelete, MethodSetLegalHold, MethodSetRetention}

// ErrInjected is in the chain of every error that Faulty makes up: errors.Is(err, ErrInjected)
// tells an injected failure from one of the wrapped store.
var ErrInjected = errors.New("injected fault")

// ErrConnReset looks like a TCP connection that the server reset, as network stacks and SDKs
// report it: errors.Is(ErrConnReset, syscall.ECONNRESET) holds.
var ErrConnReset error = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}

// InjectedError is the error of an injected fault. It wraps ErrInjected and, when the fault
// carries one, the fault's own error (a providers sentinel, ErrConnReset, a hook's error, the
// context's error of a cut-short Delay), so errors.Is finds either.
type InjectedError struct {
	Method Method
	Key    string // the call's key; List's prefix
	Fault  string // the fault's kind, e.g. "ambiguous commit"
	Err    error  // the fault's own error; nil for a plain injected failure
}

func (e *InjectedError) Error() string {
	msg := fmt.Sprintf("storetest: injected fault on %s (%s, %s)", e.Key, e.Method, e.Fault)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns ErrInjected and the fault's own error, if any.
func (e *InjectedError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInjected}
	}
	return []error{ErrInjected, e.Err}
}

// Call describes one call to the store, for rule predicates and hooks.
type Call struct {
	Method Method
	// Key is the object's key; for List, the listed prefix.
	Key string
	// PutOptions are a Put's options.
	PutOptions providers.PutOptions
	// GetOptions are a Get's options.
	GetOptions providers.GetOptions
	// LegalHold is what SetLegalHold asks for: place (true) or release (false).
	LegalHold bool
	// Retention is what SetRetention asks for.
	Retention providers.Retention
	// Err is, in an After hook, the error that the wrapped store returned.
	Err error
}

// Hook is the function of a Before or After fault. It may block (to hold a call while the test
// acts), use the wrapped store (to race the call), or return an error, which the caller then
// receives in an InjectedError. It runs on the caller's goroutine, outside Faulty's lock, so it
// may call the Faulty too; those calls are matched against the rules like any other.
type Hook func(ctx context.Context, c Call) error

type faultKind int

const (
	kindNone faultKind = iota
	kindFail
	kindDelay
	kindShortRead
	kindPartialWrite
	kindAmbiguous
	kindBefore
	kindAfter
)

// Fault is what a rule does to a call it selects. Make one with Fail, ConnReset, Delay,
// ShortRead, PartialWrite, Ambiguous, Before or After.
type Fault struct {
	kind  faultKind
	name  string
	err   error
	delay time.Duration
	n     int64
	hook  Hook
}

// Fail makes the call fail with err without reaching the store; nil err fails it with
// ErrInjected alone. Any error works, e.g. providers.ErrPermission to play a refusing server.
func Fail(err error) Fault { return Fault{kind: kindFail, name: "fail", err: err} }

// ConnReset makes the call fail without reaching the store, as if the connection was reset:
// the error wraps ErrConnReset, hence syscall.ECONNRESET.
func ConnReset() Fault { return Fault{kind: kindFail, name: "connection reset", err: ErrConnReset} }

// Delay holds the call for d, then passes it on. If ctx ends first, the call fails with ctx's
// error and does not reach the store.
func Delay(d time.Duration) Fault { return Fault{kind: kindDelay, name: "delay", delay: d} }

// ShortRead (Get only) passes the call on, but the body it returns delivers at most n bytes and
// then fails with err instead of ending with io.EOF, even if the object is shorter: a truncated
// response. nil err means io.ErrUnexpectedEOF; ErrConnReset plays a reset mid-body.
func ShortRead(n int64, err error) Fault {
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return Fault{kind: kindShortRead, name: "short read", n: n, err: err}
}

// PartialWrite (Put only) passes the store a body that delivers at most n bytes and then fails
// with err, as an upload cut off by the network does, and the caller receives that error (nil
// err: ErrInjected alone). The store sees a failed upload, so by the Store contract it leaves no
// object, or the previous one intact. If the store fails on its own before it reads to the cut
// (an ErrExists, say), the caller receives the store's error.
func PartialWrite(n int64, err error) Fault {
	return Fault{kind: kindPartialWrite, name: "partial write", n: n, err: err}
}

// Ambiguous (Put, Delete, SetLegalHold, SetRetention) passes the call on and, if the store
// succeeded, makes the caller see err anyway (nil err: ErrInjected alone), like a timeout after
// the server committed. A call that the store failed returns the store's error.
func Ambiguous(err error) Fault {
	return Fault{kind: kindAmbiguous, name: "ambiguous commit", err: err}
}

// Before runs h ahead of the call. If h returns an error, the call fails with it without
// reaching the store.
func Before(h Hook) Fault { return Fault{kind: kindBefore, name: "before hook", hook: h} }

// After runs h once the store has answered (for Get: before the body is read), with Call.Err
// set to the store's error. An error from h replaces the call's result; a Get's body is then
// closed.
func After(h Hook) Fault { return Fault{kind: kindAfter, name: "after hook", hook: h} }

// appliesTo reports whether the fault makes sense for method m.
func (ft Fault) appliesTo(m Method) bool {
	switch ft.kind {
	case kindNone:
		return false
	case kindShortRead:
		return m == MethodGet
	case kindPartialWrite:
		return m == MethodPut
	case kindAmbiguous:
		return slices.Contains(mutations, m)
	default:
		return true
	}
}

// injected is the fault's own error for call c.
func (ft Fault) injected(c Call) error { return ft.wrap(c, ft.err) }

// wrap makes err the error of the fault injected into c.
func (ft Fault) wrap(c Call, err error) error {
	return &InjectedError{Method: c.Method, Key: c.Key, Fault: ft.name, Err: err}
}

// Faulty is a providers.Store that injects faults into the calls it passes to another store,
// so tests can play what real backends do to drflow: refusals, latency, truncated bodies,
// reset connections, partial and ambiguous writes, and other writers racing a call. It is
// safe for concurrent use.
//
// Faults come from rules, tried in the order they were injected; the first one that selects a
// call decides what happens to it, and a call that no rule selects reaches the store as is:
//
//	f := storetest.NewFaulty(store)
//	f.On(storetest.MethodPut).Prefix("audit/").Times(1).Inject(storetest.Ambiguous(nil))
//	f.On(storetest.MethodGet).Glob("packs/*/*").Inject(storetest.ShortRead(10, nil))
//	f.On().Random(seed, 0.05, storetest.ConnReset(), storetest.Delay(time.Millisecond))
//
// Calls and Injected count what happened, per method.
type Faulty struct {
	store providers.Store

	mu       sync.Mutex
	rules    []*Rule
	caps     *providers.Capabilities
	calls    map[Method]int
	injected map[Method]int
}

var _ providers.Store = (*Faulty)(nil)

// NewFaulty wraps store. Without rules, every call reaches store unchanged.
func NewFaulty(store providers.Store) *Faulty {
	return &Faulty{store: store, calls: map[Method]int{}, injected: map[Method]int{}}
}

// Calls returns how many calls of the given methods (all if none) the Faulty received,
// faulted or not.
func (f *Faulty) Calls(methods ...Method) int { return f.count(f.calls, methods) }

// Injected returns how many faults the Faulty injected into calls of the given methods (all if
// none). Every fault that a rule chose counts: hooks and delays, and also an Ambiguous or
// PartialWrite fault whose call the store failed on its own.
func (f *Faulty) Injected(methods ...Method) int { return f.count(f.injected, methods) }

func (f *Faulty) count(counts map[Method]int, methods []Method) int {
	if len(methods) == 0 {
		methods = allMethods
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range methods {
		n += counts[m]
	}
	return n
}

// SetCapabilities makes Capabilities report caps instead of the wrapped store's: a location
// that enforces less than the tested code needs, or one that claims more than it enforces.
func (f *Faulty) SetCapabilities(caps providers.Capabilities) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.caps = &caps
}

// Capabilities reports what SetCapabilities set, or else the wrapped store's capabilities.
func (f *Faulty) Capabilities() providers.Capabilities {
	f.mu.Lock()
	caps := f.caps
	f.mu.Unlock()
	if caps != nil {
		return *caps
	}
	return f.store.Capabilities()
}

// Location is the wrapped store's.
func (f *Faulty) Location() providers.Location { return f.store.Location() }

// Put implements providers.Store.
func (f *Faulty) Put(ctx context.Context, key string, r io.Reader, opts providers.PutOptions) (providers.ObjectInfo, error) {
	c := Call{Method: MethodPut, Key: key, PutOptions: opts}
	ft := f.pick(c)
	if ft.kind == kindPartialWrite {
		return f.partialPut(ctx, c, ft, r)
	}
	return apply(ctx, c, ft, func() (providers.ObjectInfo, error) { return f.store.Put(ctx, key, r, opts) })
}

// Get implements providers.Store.
func (f *Faulty) Get(ctx context.Context, key string, opts providers.GetOptions) (io.ReadCloser, error) {
	c := Call{Method: MethodGet, Key: key, GetOptions: opts}
	ft := f.pick(c)
	rc, err := apply(ctx, c, ft, func() (io.ReadCloser, error) { return f.store.Get(ctx, key, opts) })
	if err != nil || ft.kind != kindShortRead {
		return rc, err
	}
	return &cutReadCloser{cutReader: &cutReader{r: rc, left: ft.n, err: ft.injected(c)}, Closer: rc}, nil
}

// Stat implements providers.Store.
func (f *Faulty) Stat(ctx context.Context, key string) (providers.ObjectInfo, error) {
	c := Call{Method: MethodStat, Key: key}
	return apply(ctx, c, f.pick(c), func() (providers.ObjectInfo, error) { return f.store.Stat(ctx, key) })
}

// List implements providers.Store.
func (f *Faulty) List(ctx context.Context, prefix string, fn func(providers.ObjectInfo) error) error {
	c := Call{Method: MethodList, Key: prefix}
	return applyErr(ctx, c, f.pick(c), func() error { return f.store.List(ctx, prefix, fn) })
}

// Delete implements providers.Store.
func (f *Faulty) Delete(ctx context.Context, key string) error {
	c := Call{Method: MethodDelete, Key: key}
	return applyErr(ctx, c, f.pick(c), func() error { return f.store.Delete(ctx, key) })
}

// SetLegalHold implements providers.Store.
func (f *Faulty) SetLegalHold(ctx context.Context, key string, on bool) error {
	c := Call{Method: MethodSetLegalHold, Key: key, LegalHold: on}
	return applyErr(ctx, c, f.pick(c), func() error { return f.store.SetLegalHold(ctx, key, on) })
}

// SetRetention implements providers.Store.
func (f *Faulty) SetRetention(ctx context.Context, key string, r providers.Retention) error {
	c := Call{Method: MethodSetRetention, Key: key, Retention: r}
	return applyErr(ctx, c, f.pick(c), func() error { return f.store.SetRetention(ctx, key, r) })
}

// pick counts c and returns the fault that the first selecting rule injects into it; the zero
// Fault if no rule selects it.
func (f *Faulty) pick(c Call) Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[c.Method]++
	for _, r := range f.rules {
		if ft, ok := r.fire(c); ok {
			f.injected[c.Method]++
			return ft
		}
	}
	return Fault{}
}

// partialPut passes the store a body cut off after ft.n bytes.
func (f *Faulty) partialPut(ctx context.Context, c Call, ft Fault, r io.Reader) (providers.ObjectInfo, error) {
	body := &cutReader{r: r, left: ft.n, err: ft.injected(c)}
	info, err := f.store.Put(ctx, c.Key, body, c.PutOptions)
	if body.cut.Load() {
		return providers.ObjectInfo{}, body.err
	}
	return info, err
}

// apply makes call, the wrapped store's answer to c, with ft injected around it. Faults that
// change a body (ShortRead, PartialWrite) are the callers' business; here they pass through.
func apply[T any](ctx context.Context, c Call, ft Fault, call func() (T, error)) (T, error) {
	var zero T
	switch ft.kind {
	case kindFail:
		return zero, ft.injected(c)
	case kindDelay:
		if err := sleep(ctx, ft.delay); err != nil {
			return zero, ft.wrap(c, err)
		}
	case kindBefore:
		if err := ft.hook(ctx, c); err != nil {
			return zero, ft.wrap(c, err)
		}
	case kindAmbiguous:
		return ambiguous(c, ft, call)
	case kindAfter:
		return after(ctx, c, ft, call)
	}
	return call()
}

// applyErr is apply for methods that return only an error.
func applyErr(ctx context.Context, c Call, ft Fault, call func() error) error {
	_, err := apply(ctx, c, ft, func() (struct{}, error) { return struct{}{}, call() })
	return err
}

// ambiguous makes call and, if it succeeded, fails anyway.
func ambiguous[T any](c Call, ft Fault, call func() (T, error)) (T, error) {
	v, err := call()
	if err != nil {
		return v, err
	}
	var zero T
	return zero, ft.injected(c)
}

// after makes call, then runs ft's hook on its outcome.
func after[T any](ctx context.Context, c Call, ft Fault, call func() (T, error)) (T, error) {
	v, err := call()
	c.Err = err
	if herr := ft.hook(ctx, c); herr != nil {
		closeIfCloser(v)
		var zero T
		return zero, ft.wrap(c, herr)
	}
	return v, err
}

// closeIfCloser closes a result that the caller will not receive, such as a Get's body.
func closeIfCloser(v any) {
	if cl, ok := v.(io.Closer); ok {
		_ = cl.Close()
	}
}

// sleep waits for d, or until ctx ends if that comes first.
func sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Rule selects calls and injects a fault into them. Make one with Faulty.On, narrow it with
// Key, Prefix, Glob, Where, Skip and Times, and activate it with Inject or Random. Selectors
// panic once the rule is active, so a running test never sees a half-changed rule.
type Rule struct {
	f *Faulty

	// Set while building; read under f.mu once active.
	methods []Method
	conds   []func(Call) bool
	skip    int
	times   int
	fault   Fault
	random  *randomFaults
	active  bool

	// Under f.mu.
	seen  int // calls selected by methods and conditions
	fired int // faults injected
}

// On starts a rule for calls of the given methods, or of every method if none is given (then
// only of those methods that the injected fault applies to).
func (f *Faulty) On(methods ...Method) *Rule {
	for _, m := range methods {
		if !slices.Contains(allMethods, m) {
			panic(fmt.Sprintf("storetest: unknown method %q", m))
		}
	}
	return &Rule{f: f, methods: slices.Clone(methods)}
}

// Key selects calls on key (for List: on the prefix key).
func (r *Rule) Key(key string) *Rule {
	return r.Where(func(c Call) bool { return c.Key == key })
}

// Prefix selects calls whose key (List: prefix) starts with prefix.
func (r *Rule) Prefix(prefix string) *Rule {
	return r.Where(func(c Call) bool { return strings.HasPrefix(c.Key, prefix) })
}

// Glob selects calls whose key (List: prefix) matches pattern, as path.Match has it: "*"
// does not cross "/". A malformed pattern panics.
func (r *Rule) Glob(pattern string) *Rule {
	if _, err := path.Match(pattern, ""); err != nil {
		panic(fmt.Sprintf("storetest: glob %q: %v", pattern, err))
	}
	return r.Where(func(c Call) bool {
		ok, _ := path.Match(pattern, c.Key)
		return ok
	})
}

// Where selects calls for which pred holds. pred runs under the Faulty's lock: it must be
// quick and must not call the Faulty. Conditions add up: a call must meet all of them.
func (r *Rule) Where(pred func(Call) bool) *Rule {
	return r.build(func() { r.conds = append(r.conds, pred) })
}

// Skip lets the first m selected calls through unharmed.
func (r *Rule) Skip(m int) *Rule {
	return r.build(func() { r.skip = m })
}

// Times limits the rule to n faults; afterwards it selects no more calls, so later rules (or
// the store) get them. Without Times a rule never runs out.
func (r *Rule) Times(n int) *Rule {
	if n < 1 {
		panic(fmt.Sprintf("storetest: Times(%d): want at least 1", n))
	}
	return r.build(func() { r.times = n })
}

// Inject activates the rule: every call it selects gets ft. It panics if ft does not apply to
// one of the rule's methods (ShortRead on Put, say).
func (r *Rule) Inject(ft Fault) *Rule {
	if ft.kind == kindNone {
		panic("storetest: Inject of the zero Fault")
	}
	for _, m := range r.methods {
		if !ft.appliesTo(m) {
			panic(fmt.Sprintf("storetest: a %s fault does not apply to %s", ft.name, m))
		}
	}
	return r.activate(func() { r.fault = ft })
}

// Random activates the rule in random mode: each call it selects fails with probability p,
// with one of faults (those that apply to the call's method) chosen at random. The draws come
// from a math/rand/v2 PCG source seeded with seed, so a trial that makes the same calls in the
// same order injects the same faults. Skip and Times count as for Inject: Times limits the
// faults, not the draws. A call that draws no fault is left to later rules.
func (r *Rule) Random(seed uint64, p float64, faults ...Fault) *Rule {
	if p < 0 || p > 1 {
		panic(fmt.Sprintf("storetest: Random probability %v is not in [0, 1]", p))
	}
	if len(faults) == 0 {
		panic("storetest: Random without faults")
	}
	rf := &randomFaults{rng: rand.New(rand.NewPCG(seed, seed)), p: p, faults: slices.Clone(faults)}
	return r.activate(func() { r.random = rf })
}

// Remove deactivates the rule: from now on it selects no call.
func (r *Rule) Remove() {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	r.f.rules = slices.DeleteFunc(r.f.rules, func(x *Rule) bool { return x == r })
}

// Fired returns how many faults the rule has injected.
func (r *Rule) Fired() int {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	return r.fired
}

// build applies change to a rule that is not active yet.
func (r *Rule) build(change func()) *Rule {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	if r.active {
		panic("storetest: rule changed after Inject or Random")
	}
	change()
	return r
}

// activate applies set and adds the rule to its Faulty.
func (r *Rule) activate(set func()) *Rule {
	return r.build(func() {
		set()
		r.active = true
		r.f.rules = append(r.f.rules, r)
	})
}

// fire reports whether r injects a fault into c, and which. The caller holds f.mu.
func (r *Rule) fire(c Call) (Fault, bool) {
	if !r.selects(c) {
		return Fault{}, false
	}
	r.seen++
	if r.seen <= r.skip || (r.times > 0 && r.fired >= r.times) {
		return Fault{}, false
	}
	ft, ok := r.choose(c.Method)
	if ok {
		r.fired++
	}
	return ft, ok
}

// selects reports whether c is among the calls r is about.
func (r *Rule) selects(c Call) bool {
	if len(r.methods) > 0 && !slices.Contains(r.methods, c.Method) {
		return false
	}
	if r.random == nil && !r.fault.appliesTo(c.Method) {
		return false
	}
	for _, cond := range r.conds {
		if !cond(c) {
			return false
		}
	}
	return true
}

// choose returns r's fault for a call of method m, if it injects one.
func (r *Rule) choose(m Method) (Fault, bool) {
	if r.random == nil {
		return r.fault, true
	}
	return r.random.draw(m)
}

// randomFaults is the state of a rule in random mode.
type randomFaults struct {
	rng    *rand.Rand
	p      float64
	faults []Fault
}

// draw decides, with probability p, to inject one of the faults that apply to m.
func (rf *randomFaults) draw(m Method) (Fault, bool) {
	if rf.rng.Float64() >= rf.p {
		return Fault{}, false
	}
	var fit []Fault
	for _, ft := range rf.faults {
		if ft.appliesTo(m) {
			fit = append(fit, ft)
		}
	}
	if len(fit) == 0 {
		return Fault{}, false
	}
	return fit[rf.rng.IntN(len(fit))], true
}

// cutReader passes at most left bytes of r, then fails with err instead of ending.
type cutReader struct {
	r    io.Reader
	left int64
	err  error
	cut  atomic.Bool // err has been returned
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.cut.Store(true)
		return 0, c.err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF {
		c.cut.Store(true)
		return n, c.err
	}
	return n, err
}

// cutReadCloser is a Get body cut short by a ShortRead fault.
type cutReadCloser struct {
	*cutReader
	io.Closer
}
