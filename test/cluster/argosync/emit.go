package main

import (
	"encoding/json"
	"io"
	gosync "sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// emitter writes one JSON object per line, each with the time since start.
type emitter struct {
	mu    gosync.Mutex
	w     io.Writer
	start time.Time
}

func newEmitter(w io.Writer) *emitter {
	return &emitter{w: w, start: time.Now()}
}

func (e *emitter) emit(ev map[string]any) {
	ev["t"] = roundSeconds(time.Since(e.start))
	line, err := json.Marshal(ev)
	if err != nil {
		line, _ = json.Marshal(map[string]any{"event": "error", "message": err.Error()})
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.w.Write(append(line, '\n'))
}

func metaTime(t time.Time) metav1.Time {
	return metav1.NewTime(t)
}
