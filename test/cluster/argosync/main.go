// Command argosync syncs a folder of manifests (like dist/) into a cluster the
// way an Argo CD Application with automated sync does it, using Argo CD's own
// sync and health engine (github.com/argoproj/gitops-engine), and reports
// every step as one JSON object per line on stdout:
//
//	{"event":"start", ...}       the objects and hooks, and the waves they fall in
//	{"event":"operation", ...}   the operation's phase and message changed ("waiting for healthy state of ...")
//	{"event":"wave", ...}        a wave (or hook group) of a phase was applied
//	{"event":"health", ...}      a live object's health, as the engine assessed it, changed
//	{"event":"resource", ...}    an object's sync result changed (applied, failed, pruned)
//	{"event":"hook", ...}        a hook started, finished or failed
//	{"event":"done", ...}        the operation completed: phase Succeeded, Failed or Error
//	{"event":"timeout", ...}     the time ran out: what the sync was still waiting for
//
// Exit status: 0 when the operation Succeeded, 1 when it Failed or Errored,
// 2 on timeout, 3 on a usage or setup error.
//
// How it drives the engine, and why not pkg/engine.Sync: Argo CD's
// application controller does not use pkg/engine. On every reconciliation it
// builds the live state from its cluster cache (pkg/cache), reconciles it
// with the target manifests (sync.Reconcile), creates a SyncContext seeded
// with the operation state it saved last time (sync.WithInitialState), calls
// Sync() once and saves GetState(). This program does exactly that in a loop.
// pkg/engine.Sync (used by gitops-engine's agent example) creates one
// SyncContext for the whole operation; a SyncContext never refreshes the live
// objects it was created with, so with sync waves it would wait forever for
// the health of objects it created, and it returns no error for a Failed
// operation. The sync logic itself (task ordering by phase, wave and kind,
// hooks and their delete policies, dry run, apply, health gating between
// waves) is entirely the engine's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/argoproj/gitops-engine/pkg/cache"
	"github.com/argoproj/gitops-engine/pkg/sync"
	"github.com/argoproj/gitops-engine/pkg/sync/common"
	"github.com/argoproj/gitops-engine/pkg/sync/hook"
	"github.com/argoproj/gitops-engine/pkg/sync/syncwaves"
	"github.com/argoproj/gitops-engine/pkg/utils/kube"
	"github.com/argoproj/gitops-engine/pkg/utils/tracing"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/klogr"
)

// Argo CD 3's default resource tracking: an annotation naming the
// Application, set on every object it applies (hooks included).
const trackingAnnotation = "argocd.argoproj.io/tracking-id"

func main() {
	os.Exit(run())
}

func run() int {
	var (
		manifests  = flag.String("manifests", "", "folder of manifests to sync (its .yaml, .yml and .json files, not recursive, as an Argo CD directory source)")
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig of the cluster")
		timeout    = flag.Duration("timeout", 10*time.Minute, "give up (exit 2) when the operation has not completed after this long")
		waveDelay  = flag.Duration("wave-delay", 2*time.Second, "pause after applying each wave but the last (Argo CD's ARGOCD_SYNC_WAVE_DELAY, default 2s)")
		appName    = flag.String("app", "kudo", "the Application name used in the tracking annotation")
		namespace  = flag.String("namespace", "default", "namespace for namespaced objects that name none (the Application's destination namespace)")
		prune      = flag.Bool("prune", false, "delete the Application's objects the manifests no longer hold, as automated sync with prune does (objects annotated Prune=false stay)")
		version    = flag.Bool("version", false, "print the version of the sync engine linked in, and exit")
	)
	klog.InitFlags(nil)
	flag.Parse()
	if *version {
		fmt.Println(engineVersion())
		return 0
	}
	if *manifests == "" || *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "usage: argosync --manifests DIR --kubeconfig FILE [--timeout 10m] [--wave-delay 2s]")
		return 3
	}
	out := newEmitter(os.Stdout)

	targets, err := loadManifests(*manifests, *appName)
	if err != nil {
		out.emit(map[string]any{"event": "error", "message": err.Error()})
		return 3
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		out.emit(map[string]any{"event": "error", "message": err.Error()})
		return 3
	}
	// The defaults (5 QPS) would make a cold cache sync take minutes.
	config.QPS, config.Burst = 50, 100

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, *timeout)
	defer cancelTimeout()

	s := &syncer{out: out, targets: targets, app: *appName, namespace: *namespace, waveDelay: *waveDelay, prune: *prune, health: newHealthRecorder(out)}
	return s.run(ctx, config)
}

// engineVersion names the gitops-engine module linked in, e.g. "gitops-engine v0.7.3".
func engineVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == "github.com/argoproj/gitops-engine" {
				return "gitops-engine " + d.Version
			}
		}
	}
	return "gitops-engine (unknown)"
}

// loadManifests reads every object of the folder's YAML and JSON files and
// marks each with the tracking annotation, as Argo CD does before syncing.
// Argo CD renders a folder that holds a Kustomization file through
// Kustomize; for dist/ the e2e tests check that `kubectl kustomize dist/`
// yields exactly the objects of its files, so reading the files is the same.
func loadManifests(dir, app string) ([]*unstructured.Unstructured, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		items, err := kube.SplitYAML(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		for _, o := range items {
			// A kustomization file is instructions for rendering, never applied.
			if !strings.HasPrefix(o.GetAPIVersion(), "kustomize.config.k8s.io/") {
				objs = append(objs, o)
			}
		}
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("no objects in %s", dir)
	}
	for _, o := range objs {
		a := o.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		gvk := o.GroupVersionKind()
		a[trackingAnnotation] = fmt.Sprintf("%s:%s/%s:%s/%s", app, gvk.Group, gvk.Kind, o.GetNamespace(), o.GetName())
		o.SetAnnotations(a)
	}
	return objs, nil
}

type syncer struct {
	out       *emitter
	targets   []*unstructured.Unstructured
	app       string
	namespace string
	waveDelay time.Duration
	prune     bool
	health    *healthRecorder
}

// resourceFilter leaves out of the cluster cache what Argo CD leaves out by
// default (resource.exclusions): Events and Leases change all the time and
// are never part of an application.
type resourceFilter struct{}

func (resourceFilter) IsExcludedResource(group, kind, _ string) bool {
	return kind == "Event" && (group == "" || group == "events.k8s.io") ||
		group == "coordination.k8s.io" && kind == "Lease"
}

func (s *syncer) run(ctx context.Context, config *rest.Config) int {
	log := klogr.New()
	// The cluster cache keeps the full manifest of the objects this
	// Application tracks, as Argo CD's does, so live state needs no GETs.
	clusterCache := cache.NewClusterCache(config,
		cache.SetLogr(log),
		cache.SetSettings(cache.Settings{ResourcesFilter: resourceFilter{}}),
		cache.SetPopulateResourceInfoHandler(func(un *unstructured.Unstructured, _ bool) (any, bool) {
			return nil, strings.HasPrefix(un.GetAnnotations()[trackingAnnotation], s.app+":")
		}),
	)
	if err := clusterCache.EnsureSynced(); err != nil {
		s.out.emit(map[string]any{"event": "error", "message": fmt.Sprintf("cluster cache: %v", err)})
		return 3
	}
	defer clusterCache.Invalidate()
	s.emitStart()

	// Wake up as soon as a tracked object changes, else once a second (as engine.Sync does).
	changed := make(chan struct{}, 1)
	unsubscribe := clusterCache.OnResourceUpdated(func(newRes, oldRes *cache.Resource, _ map[kube.ResourceKey]*cache.Resource) {
		r := newRes
		if r == nil {
			r = oldRes
		}
		if r != nil && r.Resource != nil {
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	})
	defer unsubscribe()

	kubectl := &kube.KubectlCmd{Log: log, Tracer: tracing.NopTracer{}}
	isManaged := func(r *cache.Resource) bool { return r.Resource != nil }
	started := time.Now()
	phase, message := common.OperationRunning, ""
	var results []common.ResourceSyncResult
	previous := map[string]common.ResourceSyncResult{}

	for {
		live, err := clusterCache.GetManagedLiveObjs(s.targets, isManaged)
		if err != nil {
			s.out.emit(map[string]any{"event": "error", "message": fmt.Sprintf("live state: %v", err)})
			return 3
		}
		reconciled := sync.Reconcile(s.targets, live, s.namespace, clusterCache)
		syncCtx, cleanup, err := sync.NewSyncContext("dist", reconciled, config, config, kubectl, s.namespace, clusterCache.GetOpenAPISchema(),
			sync.WithLogr(log),
			// dry run off, prune as asked (a first sync has nothing to prune), force off, hooks on
			sync.WithOperationSettings(false, s.prune, false, false),
			sync.WithManifestValidation(true),
			sync.WithHealthOverride(s.health),
			sync.WithSyncWaveHook(s.waveApplied),
			sync.WithInitialState(phase, message, results, metaTime(started)),
		)
		if err != nil {
			s.out.emit(map[string]any{"event": "error", "message": fmt.Sprintf("sync context: %v", err)})
			return 3
		}
		syncCtx.Sync()
		newPhase, newMessage, newResults := syncCtx.GetState()
		cleanup()

		if newPhase != phase || newMessage != message {
			s.out.emit(map[string]any{"event": "operation", "phase": string(newPhase), "message": newMessage})
		}
		phase, message, results = newPhase, newMessage, newResults
		s.emitResults(previous, results)

		if phase.Completed() {
			s.out.emit(map[string]any{
				"event": "done", "phase": string(phase), "message": message,
				"seconds": roundSeconds(time.Since(started)), "results": summarize(results),
			})
			if phase == common.OperationSucceeded {
				return 0
			}
			return 1
		}
		select {
		case <-ctx.Done():
			s.emitTimeout(ctx, started, message, results)
			return 2
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}

// waveApplied is the engine's SyncWaveHook: it runs after each wave of each
// phase has been applied. Like Argo CD's controller it pauses before the next
// wave, so that other controllers see the change before health is judged.
func (s *syncer) waveApplied(phase common.SyncPhase, wave int, final bool) error {
	s.out.emit(map[string]any{"event": "wave", "phase": string(phase), "wave": wave, "final": final})
	if !final && s.waveDelay > 0 {
		time.Sleep(s.waveDelay)
	}
	return nil
}

func (s *syncer) emitStart() {
	type item struct {
		Phase string `json:"phase"`
		Wave  int    `json:"wave"`
		Ref   string `json:"ref"`
	}
	var items []item
	for _, o := range s.targets {
		phases := []string{common.SyncPhaseSync}
		if hook.IsHook(o) {
			phases = nil
			for _, t := range hook.Types(o) {
				phases = append(phases, string(t))
			}
		}
		for _, p := range phases {
			items = append(items, item{Phase: p, Wave: syncwaves.Wave(o), Ref: ref(o)})
		}
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].Wave != items[j].Wave {
			return items[i].Wave < items[j].Wave
		}
		return items[i].Ref < items[j].Ref
	})
	s.out.emit(map[string]any{"event": "start", "objects": len(s.targets), "tasks": items})
}

func (s *syncer) emitResults(previous map[string]common.ResourceSyncResult, results []common.ResourceSyncResult) {
	for _, r := range results {
		key := string(r.SyncPhase) + "/" + r.ResourceKey.String()
		old, seen := previous[key]
		previous[key] = r
		if seen && old.Status == r.Status && old.HookPhase == r.HookPhase && old.Message == r.Message {
			continue
		}
		ev := resultEvent(r)
		if r.HookType != "" {
			if seen && old.HookPhase == r.HookPhase {
				continue
			}
			ev["event"] = "hook"
		} else {
			ev["event"] = "resource"
		}
		s.out.emit(ev)
	}
}

// emitTimeout names what the operation was still waiting for: every object
// the engine still counts as running, with its last assessed health.
func (s *syncer) emitTimeout(ctx context.Context, started time.Time, message string, results []common.ResourceSyncResult) {
	var waiting []map[string]any
	for _, r := range results {
		if r.HookPhase != common.OperationRunning {
			continue
		}
		w := resultEvent(r)
		if h, ok := s.health.last(r.ResourceKey); ok {
			w["health"] = h.Status
			w["healthMessage"] = h.Message
			if h.Detail != "" {
				w["detail"] = h.Detail
			}
			w["wave"] = h.Wave
		}
		waiting = append(waiting, w)
	}
	reason := "timeout"
	if errors.Is(ctx.Err(), context.Canceled) {
		reason = "interrupted"
	}
	s.out.emit(map[string]any{
		"event": "timeout", "reason": reason, "seconds": roundSeconds(time.Since(started)),
		"message": message, "notHealthy": waiting,
	})
}

func resultEvent(r common.ResourceSyncResult) map[string]any {
	ev := map[string]any{
		"syncPhase": string(r.SyncPhase),
		"group":     r.ResourceKey.Group,
		"kind":      r.ResourceKey.Kind,
		"namespace": r.ResourceKey.Namespace,
		"name":      r.ResourceKey.Name,
		"status":    string(r.Status),
		"phase":     string(r.HookPhase),
		"message":   r.Message,
	}
	if r.HookType != "" {
		ev["hookType"] = string(r.HookType)
	}
	return ev
}

func summarize(results []common.ResourceSyncResult) []map[string]any {
	out := make([]map[string]any, 0, len(results))
	for _, r := range results {
		out = append(out, resultEvent(r))
	}
	return out
}

func ref(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	return fmt.Sprintf("%s/%s/%s/%s", gvk.Group, gvk.Kind, o.GetNamespace(), o.GetName())
}

func roundSeconds(d time.Duration) float64 {
	return float64(d.Round(100*time.Millisecond)) / float64(time.Second)
}
