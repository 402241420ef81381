/**
 * STUN and TURN messages (RFC 8489, RFC 8656, RFC 6156) for the tests that talk to a TURN server themselves:
 * coturn's (coturn.e2e.test.ts, coturn-ipv6.e2e.test.ts) and LiveKit's own (livekit-turn.e2e.test.ts).
 */
import * as crypto from 'crypto';

export const MAGIC_COOKIE = 0x2112a442;
export const METHOD = { binding: 0x001, allocate: 0x003, refresh: 0x004, createPermission: 0x008 } as const;
export const CLASS = { success: 0x100, error: 0x110 } as const;
export const ATTR = {
  username: 0x0006,
  messageIntegrity: 0x0008,
  errorCode: 0x0009,
  lifetime: 0x000d,
  xorPeerAddress: 0x0012,
  realm: 0x0014,
  nonce: 0x0015,
  xorRelayedAddress: 0x0016,
  requestedAddressFamily: 0x0017,
  evenPort: 0x0018,
  requestedTransport: 0x0019,
  xorMappedAddress: 0x0020,
  fingerprint: 0x8028,
} as const;

/** REQUESTED-TRANSPORT's value for a UDP relay. */
export const UDP_TRANSPORT = Buffer.from([17, 0, 0, 0]);

export interface StunMessage {
  type: number;
  txid: Buffer;
  attrs: Map<number, Buffer>;
}

function attribute(t: number, v: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(t, 0);
  head.writeUInt16BE(v.length, 2);
  return Buffer.concat([head, v, Buffer.alloc((4 - (v.length % 4)) % 4)]);
}

/** A STUN message; with a key, MESSAGE-INTEGRITY last, over the message whose length already counts its 24 bytes. */
export function encodeStun(type: number, txid: Buffer, attrs: [number, Buffer][], integrityKey?: Buffer): Buffer {
  const body = Buffer.concat(attrs.map(([t, v]) => attribute(t, v)));
  const header = Buffer.alloc(20);
  header.writeUInt16BE(type, 0);
  header.writeUInt16BE(body.length + (integrityKey ? 24 : 0), 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  txid.copy(header, 8);
  const message = Buffer.concat([header, body]);
  if (!integrityKey) return message;
  return Buffer.concat([message, attribute(ATTR.messageIntegrity, crypto.createHmac('sha1', integrityKey).update(message).digest())]);
}

/** A STUN message's type, transaction ID and attributes (the last of each type). */
export function decodeStun(buf: Buffer): StunMessage {
  const attrs = new Map<number, Buffer>();
  const end = 20 + buf.readUInt16BE(2);
  for (let at = 20; at + 4 <= end;) {
    const len = buf.readUInt16BE(at + 2);
    attrs.set(buf.readUInt16BE(at), buf.subarray(at + 4, at + 4 + len));
    at += 4 + len + ((4 - (len % 4)) % 4);
  }
  return { type: buf.readUInt16BE(0), txid: buf.subarray(8, 20), attrs };
}

/** The 4 or 16 bytes of an address: dotted IPv4, or IPv6 in hex groups (with or without "::"). */
function addressBytes(ip: string): Buffer {
  if (!ip.includes(':')) return Buffer.from(ip.split('.').map(Number));
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

/** IPv6 bytes as text, the longest run of two or more zero groups written "::" (RFC 5952). */
function formatIpv6(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16));
  let best = { at: -1, length: 1 };
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.length) best = { at: i, length: j - i };
    i = j === i ? i + 1 : j;
  }
  if (best.at < 0) return groups.join(':');
  return `${groups.slice(0, best.at).join(':')}::${groups.slice(best.at + best.length).join(':')}`;
}

/** The XOR mask of an address attribute: the magic cookie, then (for IPv6) the transaction ID. */
const xorMask = (txid: Buffer) => Buffer.concat([Buffer.from([0x21, 0x12, 0xa4, 0x42]), txid]);

/** An XOR-MAPPED/-PEER/-RELAYED-ADDRESS value for an IPv4 or IPv6 address. */
export function xorAddress(ip: string, port: number, txid: Buffer): Buffer {
  const raw = addressBytes(ip);
  const b = Buffer.alloc(4 + raw.length);
  b[1] = raw.length === 16 ? 0x02 : 0x01;
  b.writeUInt16BE(port ^ (MAGIC_COOKIE >>> 16), 2);
  const mask = xorMask(txid);
  raw.forEach((x, i) => (b[4 + i] = x ^ mask[i]));
  return b;
}

/** The address in an XOR-…-ADDRESS value of a message with transaction ID `txid`. */
export function readXorAddress(v: Buffer, txid: Buffer): { family: 4 | 6; ip: string; port: number } {
  const mask = xorMask(txid);
  const raw = Buffer.from(v.subarray(4).map((x, i) => x ^ mask[i]));
  const port = v.readUInt16BE(2) ^ (MAGIC_COOKIE >>> 16);
  if (v[1] === 0x01) return { family: 4, ip: [...raw].join('.'), port };
  if (v[1] === 0x02) return { family: 6, ip: formatIpv6(raw), port };
  throw new Error(`not an address attribute: ${v.toString('hex')}`);
}

/** The ERROR-CODE of an error response, or undefined for a success. */
export function errorCode(m: StunMessage): number | undefined {
  const v = m.attrs.get(ATTR.errorCode);
  return v ? (v[2] & 7) * 100 + v[3] : undefined;
}

/** A reply in words, for a test's failure message. */
export function describeReply(m: StunMessage): string {
  const v = m.attrs.get(ATTR.errorCode);
  return v ? `error ${errorCode(m)} ${v.subarray(4).toString()}` : `type 0x${m.type.toString(16)}`;
}
