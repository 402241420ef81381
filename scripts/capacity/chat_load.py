"""Chat load for `npm run bench:capacity`: Matrix users on matrix-nio (a real
client library) syncing and sending into their rooms, at a rising rate.

Every user runs nio's own sync loop (long-polling /sync with a lazy-loading
filter, as clients do); a scheduler sends messages from the users in turn at
the step's rate, open loop (a slow server does not slow the offered load).
For every message and every other member of its room, the time from the send
call to the message appearing in that member's sync is one latency sample; a
delivery that has not arrived by the end of the grace period counts as
infinitely late, so it can only raise the percentiles.

Input: a JSON file (argv[1]) with base, users [{user_id, device_id,
access_token, room_id}], rooms {room_id: [user_id, ...]}, rates [msg/s],
step_seconds, grace_seconds, warmup_seconds, stop_p95_ms.
Output: JSON lines on stdout: {"event": "ready"}, then per step
{"event": "step-start", ...} and {"event": "step-end", ...}, then {"event": "done"}.
"""
import asyncio
import json
import math
import resource
import sys
import time

from nio import AsyncClient, AsyncClientConfig, RoomMessageText, RoomSendResponse, SyncResponse

# What a client asks /sync for: its rooms' timelines, members lazily, nothing it does not show.
SYNC_FILTER = {
    "room": {"timeline": {"limit": 50}, "state": {"lazy_load_members": True}},
    "presence": {"not_types": ["*"]},
}


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def pct(xs, p):
    if not xs:
        return None
    v = xs[min(len(xs) - 1, int(math.ceil(p * len(xs))) - 1)]
    return None if v == math.inf else round(v * 1000, 1)


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Load:
    def __init__(self, cfg):
        self.cfg = cfg
        self.running = True
        self.sent = {}  # message id -> record
        self.sync_errors = 0
        self.syncs = 0
        self.lag_max = 0.0
        self.clients = []

    async def start(self):
        conf = AsyncClientConfig(store_sync_tokens=False, encryption_enabled=False, max_timeouts=None, request_timeout=120)
        for u in self.cfg["users"]:
            c = AsyncClient(self.cfg["base"], u["user_id"], device_id=u["device_id"], config=conf)
            c.access_token = u["access_token"]
            c.user_id = u["user_id"]
            c.bench_room = u["room_id"]
            self.clients.append(c)
        # First syncs, a few at a time (a client's initial sync); then every client long-polls.
        sem = asyncio.Semaphore(8)

        async def first(c):
            async with sem:
                r = await c.sync(timeout=0, sync_filter=SYNC_FILTER, full_state=True)
                if not isinstance(r, SyncResponse):
                    raise RuntimeError(f"initial sync of {c.user_id} failed: {r}")

        await asyncio.gather(*(first(c) for c in self.clients))
        self.loops = [asyncio.create_task(self.sync_loop(c)) for c in self.clients]
        self.lag_task = asyncio.create_task(self.lag_probe())

    async def lag_probe(self):
        while self.running:
            t = time.monotonic()
            await asyncio.sleep(0.1)
            self.lag_max = max(self.lag_max, time.monotonic() - t - 0.1)

    async def sync_loop(self, c):
        while self.running:
            r = await c.sync(timeout=30000, sync_filter=SYNC_FILTER)
            now = time.monotonic()
            if not isinstance(r, SyncResponse):
                self.sync_errors += 1
                await asyncio.sleep(0.5)
                continue
            self.syncs += 1
            for room in r.rooms.join.values():
                for ev in room.timeline.events:
                    if isinstance(ev, RoomMessageText) and ev.body.startswith("bench ") and ev.sender != c.user_id:
                        rec = self.sent.get(ev.body[6:])
                        if rec is not None and c.user_id not in rec["recv"]:
                            rec["recv"][c.user_id] = now - rec["t0"]

    async def send_one(self, c, mid):
        rec = {"t0": time.monotonic(), "room": c.bench_room, "sender": c.user_id, "recv": {}, "ok": None, "err": None}
        self.sent[mid] = rec
        r = await c.room_send(c.bench_room, "m.room.message", {"msgtype": "m.text", "body": f"bench {mid}"}, ignore_unverified_devices=True)
        rec["send_s"] = time.monotonic() - rec["t0"]
        if isinstance(r, RoomSendResponse):
            rec["ok"] = True
        else:
            rec["ok"] = False
            rec["err"] = getattr(r, "status_code", None) or type(r).__name__

    async def step(self, index, rate):
        dur = self.cfg["step_seconds"]
        n = max(1, int(round(rate * dur)))
        emit({"event": "step-start", "step": index, "rate": rate})
        cpu0, syncs0, errs0 = cpu_seconds(), self.syncs, self.sync_errors
        self.lag_max = 0.0
        ids = []
        tasks = []
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            c = self.clients[(index * 7919 + i) % len(self.clients)]
            mid = f"{index}-{i}"
            ids.append(mid)
            tasks.append(asyncio.create_task(self.send_one(c, mid)))
        await asyncio.sleep(max(0, start + dur - time.monotonic()))
        send_window = time.monotonic() - start
        # Grace: wait for the outstanding sends and deliveries, up to grace_seconds.
        deadline = time.monotonic() + self.cfg["grace_seconds"]
        rooms = self.cfg["rooms"]

        def pending():
            return sum(1 for m in ids if self.sent[m]["ok"] is None or (self.sent[m]["ok"] and len(self.sent[m]["recv"]) < len(rooms[self.sent[m]["room"]]) - 1))

        while pending() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        cpu = cpu_seconds() - cpu0
        wall = time.monotonic() - start
        lat, send_lat = [], []
        ok = failed = unanswered = missing = 0
        errors = {}
        for m in ids:
            rec = self.sent[m]
            if rec["ok"] is None:
                unanswered += 1
                continue
            if not rec["ok"]:
                failed += 1
                errors[str(rec["err"])] = errors.get(str(rec["err"]), 0) + 1
                continue
            ok += 1
            send_lat.append(rec["send_s"])
            members = [u for u in rooms[rec["room"]] if u != rec["sender"]]
            for u in members:
                t = rec["recv"].get(u)
                if t is None:
                    missing += 1
                    lat.append(math.inf)
                else:
                    lat.append(t)
        lat.sort()
        send_lat.sort()
        for t in tasks:
            if not t.done():
                t.cancel()
        result = {
            "event": "step-end", "step": index, "rate": rate, "seconds": round(send_window, 1), "offered": n,
            "accepted": ok, "refused": failed, "refusedBy": errors, "unanswered": unanswered,
            "acceptedPerSecond": round(ok / send_window, 2),
            "deliveries": len(lat), "missingDeliveries": missing,
            "latencyMs": {"p50": pct(lat, 0.50), "p95": pct(lat, 0.95), "p99": pct(lat, 0.99)},
            "sendMs": {"p50": pct(send_lat, 0.50), "p95": pct(send_lat, 0.95)},
            "syncsPerSecond": round((self.syncs - syncs0) / wall, 1), "syncErrors": self.sync_errors - errs0,
            "clientCpuPercent": round(100 * cpu / wall, 1), "clientLoopLagMaxMs": round(self.lag_max * 1000, 1),
        }
        emit(result)
        for m in ids:
            del self.sent[m]
        return result

    async def stop(self):
        self.running = False
        for t in self.loops:
            t.cancel()
        self.lag_task.cancel()
        await asyncio.gather(*self.loops, self.lag_task, return_exceptions=True)
        for c in self.clients:
            await c.close()


async def main():
    cfg = json.load(open(sys.argv[1]))
    load = Load(cfg)
    await load.start()
    emit({"event": "ready", "users": len(load.clients), "rooms": len(cfg["rooms"])})
    await asyncio.sleep(cfg["warmup_seconds"])
    try:
        for i, rate in enumerate(cfg["rates"]):
            r = await load.step(i, rate)
            p95 = r["latencyMs"]["p95"]
            if p95 is None or p95 > cfg["stop_p95_ms"]:
                break
            await asyncio.sleep(2)
    finally:
        await load.stop()
    emit({"event": "done"})


if __name__ == "__main__":
    asyncio.run(main())
