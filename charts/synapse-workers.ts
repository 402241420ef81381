/**
 * Synapse's worker types as Kudo runs them, and the request paths each one
 * serves. This one table makes the workers' Deployments and StatefulSets,
 * their config files, the shared config's stream writers and instance map,
 * and the router's rules (charts/synapse-router.ts): no second copy of the
 * regular expressions exists.
 *
 * The path families are those Synapse's docs/workers.md assigns to each
 * worker application or stream writer; which family goes to which pool is
 * our choice (reads, sync, initial sync, federation in and out, media,
 * event sending, the small streams, background tasks).
 */

/** How the router spreads a pool's requests over its replicas. */
export type Balance =
  /** Any replica. */
  | 'roundrobin'
  /** The same user to the same replica (the localpart in the access token): its sync caches stay warm. */
  | 'user'
  /** The same remote server to the same replica: transactions from one server stay in order. */
  | 'source'
  /** The same room to the same replica (the room ID in the path). */
  | 'room';

export interface WorkerType {
  /** What it is for, in a few words (docs/scaling.md, checklist, picture). */
  readonly description: string;
  /** The Synapse application it runs. */
  readonly app: 'synapse.app.generic_worker' | 'synapse.app.media_repository';
  /**
   * deployment: interchangeable replicas, each named after its pod (or, when
   * at most one may run, after the Deployment: the shared config names it).
   * statefulset: the shared config lists its members by name and other
   * processes reach each of them (instance_map), so they need stable names
   * and addresses.
   */
  readonly workload: 'deployment' | 'statefulset';
  /** At most this many may run. @default - any number */
  readonly max?: number;
  /** Path regular expressions (PCRE, matched by HAProxy against the path) routed to it. */
  readonly paths: readonly string[];
  /** For a pool: how requests are spread. */
  readonly balance?: Balance;
  /** Streams it writes (its name goes into `stream_writers`). */
  readonly streams?: readonly string[];
  /** It needs a replication listener and an `instance_map` entry. */
  readonly replication: boolean;
  /** It serves client or federation HTTP through the router. */
  readonly http: boolean;
  /** When none of its replicas is up, the router may send its paths to the main process instead. */
  readonly mainCanServe: boolean;
}

const C = '^/_matrix/client/(api/v1|r0|v3|unstable)';
const C3 = '^/_matrix/client/(r0|v3|unstable)';
const F = '^/_matrix/federation';

/**
 * The worker types, in the order the router matches them: stream writers
 * and media first (their paths overlap the generic families), then event
 * sending, sync, federation and the client reads.
 */
export const WORKER_TYPES = {
  'stream-writer': {
    description: 'the typing, to-device, account-data, receipts, presence, push-rules and device-lists streams',
    app: 'synapse.app.generic_worker',
    workload: 'statefulset',
    max: 1,
    streams: ['typing', 'to_device', 'account_data', 'receipts', 'presence', 'push_rules', 'device_lists'],
    replication: true,
    http: true,
    mainCanServe: false,
    paths: [
      `${C}/rooms/.*/typing`,
      `${C3}/sendToDevice/`,
      `${C3}/.*/tags`,
      `${C3}/.*/account_data`,
      `${C3}/rooms/.*/receipt`,
      `${C3}/rooms/.*/read_markers`,
      `${C}/presence/`,
      `${C}/pushrules/`,
      '^/_matrix/client/(r0|v3)/delete_devices$',
      `${C}/devices(/|$)`,
      `${C3}/keys/upload`,
      `${C}/keys/device_signing/upload$`,
      `${C}/keys/signatures/upload$`,
    ],
  },
  'media-repository': {
    description: 'media uploads, downloads and thumbnails, on the media volume',
    app: 'synapse.app.media_repository',
    // One replica: the media volume is ReadWriteOnce (docs/scaling.md, "Scaling Synapse: workers").
    workload: 'deployment',
    max: 1,
    replication: false,
    http: true,
    mainCanServe: false,
    paths: [
      '^/_matrix/media/',
      '^/_matrix/client/v1/media/',
      `${F}/v1/media/`,
      '^/_synapse/admin/v1/purge_media_cache$',
      '^/_synapse/admin/v1/room/.*/media.*$',
      '^/_synapse/admin/v1/user/.*/media.*$',
      '^/_synapse/admin/v1/media/.*$',
      '^/_synapse/admin/v1/quarantine_media/.*$',
      '^/_synapse/admin/v1/users/.*/media$',
    ],
  },
  'event-creator': {
    description: 'sending events, joins and room creation',
    app: 'synapse.app.generic_worker',
    workload: 'deployment',
    balance: 'room',
    replication: false,
    http: true,
    mainCanServe: true,
    paths: [
      `${C}/rooms/.*/redact`,
      `${C}/rooms/.*/send`,
      `${C}/rooms/.*/state/`,
      `${C}/rooms/.*/(join|invite|leave|ban|unban|kick)$`,
      `${C}/join/`,
      `${C}/knock/`,
      `${C}/profile/`,
      `${C}/createRoom$`,
    ],
  },
  'initial-synchrotron': {
    description: 'initial syncs (a new device catching up), kept apart from the steady ones',
    app: 'synapse.app.generic_worker',
    workload: 'deployment',
    balance: 'user',
    replication: false,
    http: true,
    mainCanServe: true,
    // `/sync` without `since` also comes here: the router tells the two apart by the query.
    paths: ['^/_matrix/client/(api/v1|r0|v3)/initialSync$', '^/_matrix/client/(api/v1|r0|v3)/rooms/[^/]+/initialSync$'],
  },
  synchrotron: {
    description: 'steady /sync long-polls, sticky per user',
    app: 'synapse.app.generic_worker',
    workload: 'deployment',
    balance: 'user',
    replication: false,
    http: true,
    mainCanServe: true,
    paths: ['^/_matrix/client/(r0|v3)/sync$', '^/_matrix/client/(api/v1|r0|v3)/events$'],
  },
  'federation-inbound': {
    description: 'transactions other servers send, by sending server',
    app: 'synapse.app.generic_worker',
    workload: 'deployment',
    balance: 'source',
    replication: false,
    http: true,
    mainCanServe: true,
    paths: [`${F}/v1/send/`],
  },
  'federation-reader': {
    description: 'federation queries, joins and key lookups',
    app: 'synapse.app.generic_worker',
    workload: 'deployment',
    balance: 'roundrobin',
    replication: false,
    http: true,
    mainCanServe: true,
    paths: [
      `${F}/v1/version$`,
      `${F}/v1/event/`,
      `${F}/v1/state/`,
      `${F}/v1/state_ids/`,
      `${F}/v1/backfill/`,
      `${F}/v1/get_missing_events/`,
      `${F}/v1/publicRooms`,
      `${F}/v1/query/`,
      `${F}/v1/make_join/`,
      `${F}/v1/make_leave/`,
      `${F}/(v1|v2)/send_join/`,
      `${F}/(v1|v2)/send_leave/`,
      `${F}/v1/make_knock/`,
      `${F}/v1/send_knock/`,
      `${F}/(v1|v2)/invite/`,
      `${F}/v1/event_auth/`,
      `${F}/v1/timestamp_to_event/`,
      `${F}/v1/exchange_third_party_invite/`,
      `${F}/v1/user/devices/`,
      '^/_matrix/key/v2/query',
      `${F}/v1/hierarchy/`,
    ],
  },
  'client-reader': {
    description: 'client reads, login and registration, key queries',
    app: 'synapse.app.generic_worker',
    workload: 'deployment',
    balance: 'roundrobin',
    replication: false,
    http: true,
    mainCanServe: true,
    paths: [
      `${C}/publicRooms$`,
      `${C}/rooms/.*/joined_members$`,
      `${C}/rooms/.*/context/.*$`,
      `${C}/rooms/.*/members$`,
      `${C}/rooms/.*/state$`,
      '^/_matrix/client/v1/rooms/.*/hierarchy$',
      '^/_matrix/client/(v1|unstable)/rooms/.*/relations/',
      '^/_matrix/client/v1/rooms/.*/threads$',
      `${C3}/account/3pid$`,
      `${C3}/account/whoami$`,
      `${C3}/account/deactivate$`,
      '^/_matrix/client/versions$',
      `${C}/voip/turnServer$`,
      `${C}/rooms/.*/event/`,
      `${C}/joined_rooms$`,
      '^/_matrix/client/v1/rooms/.*/timestamp_to_event$',
      '^/_matrix/client/(api/v1|r0|v3|unstable/.*)/rooms/.*/aliases',
      `${C}/search$`,
      `${C3}/user/.*/filter(/|$)`,
      `${C}/directory/room/.*$`,
      `${C3}/capabilities$`,
      `${C3}/notifications$`,
      `${C3}/keys/query$`,
      `${C3}/keys/changes$`,
      `${C3}/keys/claim$`,
      `${C3}/room_keys/`,
      `${C}/login$`,
      `${C3}/register$`,
      `${C3}/register/available$`,
      '^/_matrix/client/v1/register/m.login.registration_token/validity$',
      `${C3}/password_policy$`,
      `${C3}/user_directory/search$`,
      // Pagination: all requests for a room to one replica would be better; reads are safe anywhere.
      `${C}/rooms/.*/messages$`,
    ],
  },
  'federation-sender': {
    description: 'sending events to other servers; the only Synapse processes that reach the internet',
    app: 'synapse.app.generic_worker',
    workload: 'statefulset',
    // Listed in outbound_federation_restricted_to, so the others send through it by replication.
    replication: true,
    http: false,
    mainCanServe: false,
    paths: [],
  },
  'event-persister': {
    description: 'writing events to the database (the events stream, sharded by room)',
    app: 'synapse.app.generic_worker',
    workload: 'statefulset',
    streams: ['events'],
    replication: true,
    http: false,
    mainCanServe: false,
    paths: [],
  },
  background: {
    description: 'background tasks: the user directory, application services, cleanups',
    app: 'synapse.app.generic_worker',
    workload: 'deployment',
    max: 1,
    replication: false,
    http: false,
    mainCanServe: false,
    paths: [],
  },
} as const satisfies Record<string, WorkerType>;

export type WorkerTypeName = keyof typeof WORKER_TYPES;
export const WORKER_TYPE_NAMES = Object.keys(WORKER_TYPES) as WorkerTypeName[];

/** `/sync` without a `since` query is an initial sync; the router sends it to the initial-synchrotron pool. */
export const INITIAL_SYNC_PATH = WORKER_TYPES.synchrotron.paths[0];

/**
 * Which process a request would be served by, per the table: the first
 * worker type (in table order) with a replica whose paths match, else main.
 * The router renders the same decision; this is for tests and tools.
 */
export function routeFor(pathAndQuery: string, replicas: Partial<Record<WorkerTypeName, number>>): WorkerTypeName | 'main' {
  // As HAProxy reads them: the query starts after the first '?', and '&' or ';' ends a parameter (url_param).
  const q = pathAndQuery.indexOf('?');
  const p = q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
  const query = q < 0 ? '' : pathAndQuery.slice(q + 1);
  const running = (t: WorkerTypeName) => (replicas[t] ?? 0) > 0;
  if (running('initial-synchrotron') && new RegExp(INITIAL_SYNC_PATH).test(p) && !/(^|[&;])since=/.test(query)) return 'initial-synchrotron';
  for (const t of WORKER_TYPE_NAMES) {
    if (running(t) && WORKER_TYPES[t].paths.some((re) => new RegExp(re).test(p))) return t;
  }
  return 'main';
}
