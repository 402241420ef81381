package main

import (
	"fmt"
	gosync "sync"

	"github.com/argoproj/gitops-engine/pkg/health"
	"github.com/argoproj/gitops-engine/pkg/sync/hook"
	"github.com/argoproj/gitops-engine/pkg/sync/syncwaves"
	"github.com/argoproj/gitops-engine/pkg/utils/kube"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Health: the engine's built-in checks (gitops-engine pkg/health: Deployment,
// StatefulSet, DaemonSet, ReplicaSet, PersistentVolumeClaim, Service, Ingress,
// Job, Pod, ...) decide, except for the kinds below.
//
// Argo CD adds health checks written in Lua for other kinds
// (resource_customizations/<group>/<kind>/health.lua, run by util/lua). We
// cannot link Argo CD's own: github.com/argoproj/argo-cd/v3 v3.6.1 (and the
// github.com/argoproj/argo-cd/gitops-engine/v3 v3.6.1 it requires) declare
// `go 1.27.0`, and our Go is 1.26.8 with GOTOOLCHAIN=local, so the go command
// refuses the module ("requires go >= 1.27.0"). And even with a newer Go the
// two could not share one program with gitops-engine v0.7.3: Argo CD 3.6.1
// pins every k8s.io module at v0.37.0 (by replace directives), gitops-engine
// v0.7.3 at v0.23.1, and a build holds one version of each module.
//
// So the Lua checks that Argo CD 3.6 applies to the kinds our manifests use
// are expressed here in Go, each naming the script it stands in for and
// keeping its statuses and messages. Without them the engine would treat a
// Certificate, an Issuer or a PodDisruptionBudget as having no health
// (healthy at once), which is not what Argo CD does: a Certificate is
// Progressing until cert-manager marks it Ready.
func argoCDLuaHealth(obj *unstructured.Unstructured) *health.HealthStatus {
	gvk := obj.GroupVersionKind()
	switch {
	case gvk.Group == "cert-manager.io" && gvk.Kind == "Certificate":
		return certificateHealth(obj)
	case gvk.Group == "cert-manager.io" && gvk.Kind == "ClusterIssuer":
		return issuerHealth(obj, "Initializing ClusterIssuer")
	case gvk.Group == "cert-manager.io" && gvk.Kind == "Issuer":
		return issuerHealth(obj, "Initializing issuer")
	case gvk.Group == "batch" && gvk.Kind == "CronJob":
		return cronJobHealth(obj)
	case gvk.Group == "policy" && gvk.Kind == "PodDisruptionBudget":
		return pdbHealth(obj)
	}
	return nil
}

func conditions(obj *unstructured.Unstructured) []map[string]any {
	list, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	var out []map[string]any
	for _, c := range list {
		if m, ok := c.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// Stands in for resource_customizations/cert-manager.io/Certificate/health.lua:
// an Issuing=True condition means Progressing whatever else it says; then
// Ready=False is Degraded and Ready=True Healthy; anything else (no status,
// no Ready condition) is Progressing, "Waiting for certificate".
func certificateHealth(obj *unstructured.Unstructured) *health.HealthStatus {
	conds := conditions(obj)
	for _, c := range conds {
		if str(c, "type") == "Issuing" && str(c, "status") == "True" {
			return &health.HealthStatus{Status: health.HealthStatusProgressing, Message: str(c, "message")}
		}
	}
	for _, c := range conds {
		if str(c, "type") != "Ready" {
			continue
		}
		switch str(c, "status") {
		case "False":
			return &health.HealthStatus{Status: health.HealthStatusDegraded, Message: str(c, "message")}
		case "True":
			return &health.HealthStatus{Status: health.HealthStatusHealthy, Message: str(c, "message")}
		}
	}
	return &health.HealthStatus{Status: health.HealthStatusProgressing, Message: "Waiting for certificate"}
}

// Stands in for resource_customizations/cert-manager.io/{ClusterIssuer,Issuer}/health.lua:
// Ready=False is Degraded, Ready=True Healthy, else Progressing (the ACME
// account is not registered yet).
func issuerHealth(obj *unstructured.Unstructured, waiting string) *health.HealthStatus {
	for _, c := range conditions(obj) {
		if str(c, "type") != "Ready" {
			continue
		}
		switch str(c, "status") {
		case "False":
			return &health.HealthStatus{Status: health.HealthStatusDegraded, Message: str(c, "message")}
		case "True":
			return &health.HealthStatus{Status: health.HealthStatusHealthy, Message: str(c, "message")}
		}
	}
	return &health.HealthStatus{Status: health.HealthStatusProgressing, Message: waiting}
}

// Stands in for resource_customizations/batch/CronJob/health.lua as of Argo
// CD 3.2 and later (argo-cd#24430): a suspended CronJob is Healthy (not
// Suspended, which would hold a sync forever: argo-cd#24428); a CronJob that
// has never run is Healthy; one whose last run did not succeed, with nothing
// running, is Degraded. Only a CronJob with no status at all is Progressing.
func cronJobHealth(obj *unstructured.Unstructured) *health.HealthStatus {
	if suspend, _, _ := unstructured.NestedBool(obj.Object, "spec", "suspend"); suspend {
		return &health.HealthStatus{Status: health.HealthStatusHealthy, Message: "CronJob is Suspended"}
	}
	status, found, _ := unstructured.NestedMap(obj.Object, "status")
	if !found || status == nil {
		return &health.HealthStatus{Status: health.HealthStatusProgressing, Message: "Waiting for CronJob"}
	}
	lastSchedule := str(status, "lastScheduleTime")
	if lastSchedule == "" {
		return &health.HealthStatus{Status: health.HealthStatusHealthy, Message: "CronJob has not been scheduled yet"}
	}
	lastSuccess := str(status, "lastSuccessfulTime")
	if lastSuccess == "" {
		return &health.HealthStatus{Status: health.HealthStatusHealthy, Message: "The CronJob never completed successfully. It may not be healthy"}
	}
	if active, _ := status["active"].([]any); len(active) > 0 {
		return &health.HealthStatus{Status: health.HealthStatusHealthy, Message: "The job is running. Its last execution may not have been successful"}
	}
	// RFC 3339 times in UTC compare as strings, as the Lua script compares them.
	if lastSuccess < lastSchedule {
		return &health.HealthStatus{Status: health.HealthStatusDegraded, Message: "CronJob has not completed its last execution successfully"}
	}
	return &health.HealthStatus{Status: health.HealthStatusHealthy, Message: "CronJob has completed its last execution successfully"}
}

// Stands in for resource_customizations/policy/PodDisruptionBudget/health.lua:
// Progressing until the disruption controller writes a condition; a False
// condition is Degraded unless its reason is InsufficientPods.
func pdbHealth(obj *unstructured.Unstructured) *health.HealthStatus {
	hs := &health.HealthStatus{Status: health.HealthStatusProgressing, Message: "Waiting for status"}
	for _, c := range conditions(obj) {
		reason := str(c, "reason")
		if str(c, "status") == "False" && reason != "InsufficientPods" {
			return &health.HealthStatus{Status: health.HealthStatusDegraded, Message: "PodDisruptionBudget has " + reason}
		}
		hs = &health.HealthStatus{Status: health.HealthStatusHealthy, Message: "PodDisruptionBudget has " + reason}
	}
	return hs
}

// healthRecorder is the engine's HealthOverride (as Argo CD passes its Lua
// overrides): it returns the Argo CD check above, or else the engine's own
// built-in result, unchanged, and reports every change of an object's health.
type healthRecorder struct {
	out  *emitter
	mu   gosync.Mutex
	seen map[kube.ResourceKey]assessed
}

type assessed struct {
	Status  health.HealthStatusCode
	Message string
	Detail  string
	Wave    int
}

func newHealthRecorder(out *emitter) *healthRecorder {
	return &healthRecorder{out: out, seen: map[kube.ResourceKey]assessed{}}
}

func (h *healthRecorder) GetResourceHealth(obj *unstructured.Unstructured) (*health.HealthStatus, error) {
	hs := argoCDLuaHealth(obj)
	var err error
	if hs == nil {
		// No override for this kind: the engine's own check (which is also
		// what the engine would use if we returned nil).
		hs, err = health.GetResourceHealth(obj, nil)
	}
	if hs != nil {
		h.record(obj, hs)
	}
	return hs, err
}

func (h *healthRecorder) record(obj *unstructured.Unstructured, hs *health.HealthStatus) {
	key := kube.GetResourceKey(obj)
	a := assessed{Status: hs.Status, Message: hs.Message, Detail: detail(obj), Wave: syncwaves.Wave(obj)}
	h.mu.Lock()
	old, ok := h.seen[key]
	h.seen[key] = a
	h.mu.Unlock()
	if ok && old == a {
		return
	}
	ev := map[string]any{
		"event": "health", "wave": a.Wave, "group": key.Group, "kind": key.Kind, "namespace": key.Namespace, "name": key.Name,
		"status": string(a.Status), "message": a.Message, "hook": hook.IsHook(obj),
	}
	if a.Detail != "" {
		ev["detail"] = a.Detail
	}
	h.out.emit(ev)
}

func (h *healthRecorder) last(key kube.ResourceKey) (assessed, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.seen[key]
	return a, ok
}

// detail adds the facts a person needs when health alone does not say why:
// the engine reports a Pending claim as Progressing with no message.
func detail(obj *unstructured.Unstructured) string {
	switch obj.GetKind() {
	case "PersistentVolumeClaim":
		phase, _, _ := unstructured.NestedString(obj.Object, "status", "phase")
		class, _, _ := unstructured.NestedString(obj.Object, "spec", "storageClassName")
		return fmt.Sprintf("phase %s, storageClassName %q", phase, class)
	case "Deployment", "StatefulSet":
		want, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
		ready, _, _ := unstructured.NestedInt64(obj.Object, "status", "readyReplicas")
		return fmt.Sprintf("%d/%d replicas ready", ready, want)
	case "DaemonSet":
		want, _, _ := unstructured.NestedInt64(obj.Object, "status", "desiredNumberScheduled")
		ready, _, _ := unstructured.NestedInt64(obj.Object, "status", "numberReady")
		return fmt.Sprintf("%d/%d pods ready", ready, want)
	}
	return ""
}
