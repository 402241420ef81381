/** Fixed ports (not configurable: clients and firewalls expect them). */
export const LIVEKIT_API_PORT = 7880;
export const LIVEKIT_METRICS_PORT = 6789;
export const TURN_PORT = 3478;
export const TURN_TLS_PORT = 5349;
export const TURN_METRICS_PORT = 9641;
