// A LiveKit load client for `npm run bench:capacity`: participants that join
// rooms with LiveKit's Go SDK (server-sdk-go), publish synthetic Opus and VP8
// tracks as real RTP over real WebRTC (ICE, DTLS, SRTP), subscribe to every
// other participant, and count what arrives.
//
// The frames are not encoded media (an SFU never decodes): audio is 20 ms
// packets of the given bitrate whose first 8 bytes carry the send time, video
// is frames of the given bitrate and rate whose VP8 frame tag marks a key
// frame every 3 s and whenever LiveKit asks for one (PLI), as LiveKit's own
// load tester does with its clips.
//
// It prints one JSON object: what joined, what was forwarded during the
// measurement window, the loss seen by the receivers (gaps in the sequence
// numbers LiveKit forwards) and the audio's send-to-receive latency.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

type recvTrack struct {
	kind     string
	mu       sync.Mutex
	started  bool
	highest  uint64 // extended sequence number
	received uint64
	// snapshot at the start of the window
	winHighest, winReceived uint64
	winSet                  bool
}

type stats struct {
	sentPackets  atomic.Uint64
	sentBytes    atomic.Uint64
	recvBytes    atomic.Uint64
	latMu        sync.Mutex
	latencies    []float64 // ms, audio, during the window
	measuring    atomic.Bool
	tracksMu     sync.Mutex
	tracks       []*recvTrack
	subscribed   atomic.Int64
	joinErrors   atomic.Int64
	joined       atomic.Int64
	publishedTr  atomic.Int64
	pliReceived  atomic.Int64
	firstErrorMu sync.Mutex
	firstError   string
}

func (s *stats) noteError(err error) {
	s.firstErrorMu.Lock()
	if s.firstError == "" {
		s.firstError = err.Error()
	}
	s.firstErrorMu.Unlock()
}

func readTrack(st *stats, t *webrtc.TrackRemote, rt *recvTrack) {
	var cycles uint64
	var last uint16
	first := true
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		seq := p.SequenceNumber
		if !first && seq < last && last-seq > 0x8000 {
			cycles += 1 << 16
		}
		ext := cycles + uint64(seq)
		if first || (seq > last && seq-last < 0x8000) || (seq < last && last-seq > 0x8000) {
			last = seq
		}
		first = false
		rt.mu.Lock()
		rt.started = true
		rt.received++
		if ext > rt.highest {
			rt.highest = ext
		}
		rt.mu.Unlock()
		st.recvBytes.Add(uint64(len(p.Payload)))
		if rt.kind == "audio" && len(p.Payload) >= 8 && st.measuring.Load() {
			sent := int64(binary.BigEndian.Uint64(p.Payload[:8]))
			lat := float64(time.Now().UnixNano()-sent) / 1e6
			if lat >= 0 && lat < 60_000 {
				st.latMu.Lock()
				st.latencies = append(st.latencies, lat)
				st.latMu.Unlock()
			}
		}
	}
}

func publishAudio(st *stats, track *lksdk.LocalTrack, kbps int, stop <-chan struct{}) {
	size := kbps * 1000 / 8 / 50 // 20 ms frames
	if size < 16 {
		size = 16
	}
	buf := make([]byte, size)
	rand.Read(buf)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			binary.BigEndian.PutUint64(buf[:8], uint64(time.Now().UnixNano()))
			if err := track.WriteSample(media.Sample{Data: buf, Duration: 20 * time.Millisecond}, nil); err == nil {
				st.sentPackets.Add(1)
				st.sentBytes.Add(uint64(size))
			}
		}
	}
}

func publishVideo(st *stats, track *lksdk.LocalTrack, kbps, fps int, keyNow *atomic.Bool, stop <-chan struct{}) {
	interval := time.Second / time.Duration(fps)
	frameSize := kbps * 1000 / 8 / fps
	if frameSize < 32 {
		frameSize = 32
	}
	key := make([]byte, frameSize*4) // a key frame is larger
	delta := make([]byte, frameSize)
	rand.Read(key)
	rand.Read(delta)
	// VP8 frame tag (RFC 6386 9.1): bit 0 is 0 for a key frame, then the start code and 1280x720.
	key[0] = 0x10
	copy(key[3:10], []byte{0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02})
	delta[0] = 0x11
	tick := time.NewTicker(interval)
	defer tick.Stop()
	frames := 0
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			data := delta
			if frames%(3*fps) == 0 || keyNow.Swap(false) {
				data = key
			}
			frames++
			if err := track.WriteSample(media.Sample{Data: data, Duration: interval}, nil); err == nil {
				// the payloader splits a frame into packets of at most ~1200 bytes
				st.sentPackets.Add(uint64((len(data) + 1199) / 1200))
				st.sentBytes.Add(uint64(len(data)))
			}
		}
	}
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return -1
	}
	i := int(float64(len(xs)-1) * p)
	return xs[i]
}

func main() {
	url := flag.String("url", "", "LiveKit ws:// URL")
	key := flag.String("key", "", "API key")
	secret := flag.String("secret", "", "API secret")
	rooms := flag.Int("rooms", 1, "rooms")
	size := flag.Int("size", 2, "participants per room")
	videoPubs := flag.Int("video-publishers", -1, "participants per room publishing video (-1: all)")
	audioPubs := flag.Int("audio-publishers", -1, "participants per room publishing audio (-1: all)")
	videoKbps := flag.Int("video-kbps", 500, "video bitrate")
	fps := flag.Int("fps", 30, "video frames per second")
	audioKbps := flag.Int("audio-kbps", 32, "audio bitrate")
	warmup := flag.Duration("warmup", 5*time.Second, "time after the last join before measuring")
	duration := flag.Duration("duration", 20*time.Second, "measurement window")
	prefix := flag.String("prefix", "bench", "room name prefix")
	joinParallel := flag.Int("join-parallel", 8, "joins at once")
	ipv6Only := flag.Bool("ipv6-only", false, "gather and accept IPv6 ICE candidates only (the URL's address decides the signal's family)")
	relayOnly := flag.Bool("relay-only", false, "use the TURN servers LiveKit hands out, and only their relayed candidates (ICE transport policy relay)")
	flag.Parse()
	if *relayOnly && *ipv6Only {
		// pion gathers IPv4 relays only: the two together could never connect.
		fmt.Fprintln(os.Stderr, "-relay-only and -ipv6-only exclude each other")
		os.Exit(2)
	}
	if *videoPubs < 0 || *videoPubs > *size {
		*videoPubs = *size
	}
	if *audioPubs < 0 || *audioPubs > *size {
		*audioPubs = *size
	}

	connectOptions := []lksdk.ConnectOption{lksdk.WithConnectTimeout(60 * time.Second)}
	if *relayOnly {
		// Every path goes through a TURN relay: no host or server-reflexive candidate is gathered.
		connectOptions = append(connectOptions, lksdk.WithICETransportPolicy(webrtc.ICETransportPolicyRelay))
	} else {
		// The benchmark's clients sit beside LiveKit: a relay would only add a hop.
		connectOptions = append(connectOptions, lksdk.WithDisableTURN())
	}
	if *ipv6Only {
		// Without TURN (above) nothing IPv4 is left: no IPv4 host candidate is gathered or taken from the server.
		connectOptions = append(connectOptions, lksdk.WithIPv6Only())
	}

	st := &stats{}
	stop := make(chan struct{})
	var connected []*lksdk.Room
	var connMu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, *joinParallel)
	joinStart := time.Now()
	for r := 0; r < *rooms; r++ {
		for i := 0; i < *size; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(r, i int) {
				defer wg.Done()
				defer func() { <-sem }()
				cb := lksdk.NewRoomCallback()
				cb.OnTrackSubscribed = func(t *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
					st.subscribed.Add(1)
					kind := "video"
					if t.Kind() == webrtc.RTPCodecTypeAudio {
						kind = "audio"
					}
					rt := &recvTrack{kind: kind}
					st.tracksMu.Lock()
					st.tracks = append(st.tracks, rt)
					st.tracksMu.Unlock()
					go readTrack(st, t, rt)
				}
				room, err := lksdk.ConnectToRoom(*url, lksdk.ConnectInfo{
					APIKey: *key, APISecret: *secret, RoomName: fmt.Sprintf("%s-%d", *prefix, r), ParticipantIdentity: fmt.Sprintf("p%d-%d", r, i),
				}, cb, connectOptions...)
				if err != nil {
					st.joinErrors.Add(1)
					st.noteError(err)
					return
				}
				st.joined.Add(1)
				connMu.Lock()
				connected = append(connected, room)
				connMu.Unlock()
				if i < *audioPubs {
					t, err := lksdk.NewLocalTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
					if err == nil {
						_, err = room.LocalParticipant.PublishTrack(t, &lksdk.TrackPublicationOptions{Name: "mic", Source: livekit.TrackSource_MICROPHONE})
					}
					if err != nil {
						st.noteError(err)
					} else {
						st.publishedTr.Add(1)
						go publishAudio(st, t, *audioKbps, stop)
					}
				}
				if i < *videoPubs {
					keyNow := &atomic.Bool{}
					t, err := lksdk.NewLocalTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
						lksdk.WithRTCPHandler(func(p rtcp.Packet) {
							switch p.(type) {
							case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
								st.pliReceived.Add(1)
								keyNow.Store(true)
							}
						}))
					if err == nil {
						_, err = room.LocalParticipant.PublishTrack(t, &lksdk.TrackPublicationOptions{
							Name: "camera", Source: livekit.TrackSource_CAMERA, VideoWidth: 1280, VideoHeight: 720,
						})
					}
					if err != nil {
						st.noteError(err)
					} else {
						st.publishedTr.Add(1)
						go publishVideo(st, t, *videoKbps, *fps, keyNow, stop)
					}
				}
			}(r, i)
		}
	}
	wg.Wait()
	joinSeconds := time.Since(joinStart).Seconds()
	time.Sleep(*warmup)

	// The window: snapshot every track, send and receive, snapshot again.
	snapshot := func() {
		st.tracksMu.Lock()
		for _, t := range st.tracks {
			t.mu.Lock()
			t.winHighest, t.winReceived, t.winSet = t.highest, t.received, t.started
			t.mu.Unlock()
		}
		st.tracksMu.Unlock()
	}
	snapshot()
	enc := json.NewEncoder(os.Stdout)
	_ = enc.Encode(map[string]any{"event": "window-start", "joined": st.joined.Load()})
	sent0, recvB0 := st.sentPackets.Load(), st.recvBytes.Load()
	st.measuring.Store(true)
	start := time.Now()
	time.Sleep(*duration)
	st.measuring.Store(false)
	elapsed := time.Since(start).Seconds()
	sent, recvB := st.sentPackets.Load()-sent0, st.recvBytes.Load()-recvB0
	var expected, received uint64
	activeTracks := 0
	st.tracksMu.Lock()
	for _, t := range st.tracks {
		t.mu.Lock()
		if t.winSet {
			expected += t.highest - t.winHighest
			received += t.received - t.winReceived
			if t.received > t.winReceived {
				activeTracks++
			}
		}
		t.mu.Unlock()
	}
	st.tracksMu.Unlock()
	close(stop)

	st.latMu.Lock()
	sort.Float64s(st.latencies)
	lat := st.latencies
	st.latMu.Unlock()
	loss := 0.0
	if expected > 0 && received < expected {
		loss = 100 * float64(expected-received) / float64(expected)
	}
	out := map[string]any{
		"event": "window-end", "rooms": *rooms, "size": *size, "videoPublishersPerRoom": *videoPubs, "audioPublishersPerRoom": *audioPubs,
		"joined": st.joined.Load(), "joinErrors": st.joinErrors.Load(), "joinSeconds": joinSeconds,
		"publishedTracks": st.publishedTr.Load(), "subscribedTracks": st.subscribed.Load(), "receivingTracks": activeTracks,
		"windowSeconds": elapsed, "sentPacketsPerSecond": float64(sent) / elapsed,
		"receivedPacketsPerSecond": float64(received) / elapsed, "receivedMbps": float64(recvB) * 8 / elapsed / 1e6,
		"lossPercent": loss, "audioLatencyMs": map[string]float64{"p50": percentile(lat, 0.5), "p95": percentile(lat, 0.95), "p99": percentile(lat, 0.99)},
		"pliReceived": st.pliReceived.Load(), "firstError": st.firstError,
	}
	_ = enc.Encode(out)
	// Leave: LiveKit keeps a room until its last participant is gone.
	var lw sync.WaitGroup
	for _, r := range connected {
		lw.Add(1)
		go func(r *lksdk.Room) { defer lw.Done(); r.Disconnect() }(r)
	}
	lw.Wait()
}
