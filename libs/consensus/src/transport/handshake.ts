/**
 * Mutual authentication with the shared cluster secret, before any Raft message:
 *   server → Hello  { magic, version, serverNonce }
 *   client → Auth   { version, lane, clientNonce, clientId, expectedServerId, advertise, mac }
 *            mac = HMAC-SHA256(secret, "raft-client\0" || serverNonce || len16 clientId || len16 advertise)
 *   server → Accept { serverId, mac = HMAC-SHA256(secret, "raft-server\0" || clientNonce || serverId) }
 *         or Refuse { reason }, then closes.
 * The direction labels keep one side's proof from being replayed as the other's (reflection).
 * `advertise` is the client's own Raft address (host:port, as the other members know it; empty = none):
 * the server may dial it back when it has no address for the client yet (a node that joined knowing no
 * peer). It is inside the MAC, so only a holder of the secret can make a node dial somewhere.
 * With no secret (loopback dev) the ids are still exchanged and checked, the MACs are empty.
 *
 * Version 2 added `advertise` (version 1 had none, and its MAC covered only nonce and id). Both ends of
 * a connection must speak the same version: a mismatch is refused naming both versions.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { CodecError, Reader } from './codec';
import { FrameKind, encodeFrame } from './frame';

export const handshakeMagic = 0x52414654; // "RAFT"
export const protocolVersion = 2;
export const nonceBytes = 32;
const macBytes = 32;

export type Lane = 'control' | 'bulk';
const laneCodes: Record<Lane, number> = { control: 1, bulk: 2 };

export interface AuthRequest {
  lane: Lane;
  clientNonce: Buffer;
  clientId: string;
  expectedServerId: string;
  /** The client's advertised Raft address 'host:port', or '' when it advertises none. */
  advertise: string;
  mac: Buffer;
}

export interface AcceptReply {
  serverId: string;
  mac: Buffer;
}

export function newNonce(): Buffer {
  return randomBytes(nonceBytes);
}

function mac(secret: string, label: string, nonce: Buffer, id: string): Buffer {
  return createHmac('sha256', secret).update(label).update(nonce).update(id, 'utf8').digest();
}

/** A string with its UTF-8 byte length first (u16 LE), so that (id, advertise) pairs cannot collide. */
function lengthPrefixed(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > 0xffff) throw new CodecError(`handshake field of ${bytes.length} bytes`);
  const out = Buffer.allocUnsafe(2 + bytes.length);
  out.writeUInt16LE(bytes.length, 0);
  bytes.copy(out, 2);
  return out;
}

/** The client's proof: binds the server's nonce, the client's id and the address it advertises. */
export const clientMac = (secret: string, serverNonce: Buffer, clientId: string, advertise: string): Buffer =>
  createHmac('sha256', secret)
    .update('raft-client\0')
    .update(serverNonce)
    .update(lengthPrefixed(clientId))
    .update(lengthPrefixed(advertise))
    .digest();
export const serverMac = (secret: string, clientNonce: Buffer, serverId: string): Buffer =>
  mac(secret, 'raft-server\0', clientNonce, serverId);

function checkVersion(version: number, from: string): void {
  if (version !== protocolVersion)
    throw new CodecError(
      `${from} speaks handshake protocol version ${version}, this node speaks ${protocolVersion}: run the same release on every node of the cluster`,
    );
}

/** Constant-time check of a received MAC; a missing or short MAC is simply wrong. */
export function macMatches(expected: Buffer, received: Buffer): boolean {
  return received.length === expected.length && timingSafeEqual(expected, received);
}

const payloadBytesMax = 1024;

export function encodeHello(serverNonce: Buffer): Buffer {
  return encodeFrame(FrameKind.Hello, payloadBytesMax, (w) => {
    w.u32(handshakeMagic);
    w.u8(protocolVersion);
    w.buf.set(serverNonce, w.offset);
    w.offset += nonceBytes;
  });
}

export function decodeHello(payload: Buffer): Buffer {
  const r = new Reader(payload, 0, payload.length);
  if (r.u32('magic') !== handshakeMagic) throw new CodecError('not a Raft peer (bad magic)');
  checkVersion(r.u8('version'), 'the peer');
  const nonce = fixedBytes(r, nonceBytes, 'server nonce');
  end(r);
  return nonce;
}

export function encodeAuth(a: AuthRequest): Buffer {
  return encodeFrame(FrameKind.Auth, payloadBytesMax, (w) => {
    w.u8(protocolVersion);
    w.u8(laneCodes[a.lane]);
    w.buf.set(a.clientNonce, w.offset);
    w.offset += nonceBytes;
    w.str(a.clientId, 'client id');
    w.str(a.expectedServerId, 'expected server id');
    w.str(a.advertise, 'advertised address');
    w.u8(a.mac.length);
    w.buf.set(a.mac, w.offset);
    w.offset += a.mac.length;
  });
}

export function decodeAuth(payload: Buffer): AuthRequest {
  const r = new Reader(payload, 0, payload.length);
  checkVersion(r.u8('version'), 'the connecting peer');
  const code = r.u8('lane');
  const lane = (Object.keys(laneCodes) as Lane[]).find((l) => laneCodes[l] === code);
  if (lane === undefined) throw new CodecError(`unknown lane ${code}`);
  const clientNonce = fixedBytes(r, nonceBytes, 'client nonce');
  const clientId = r.str('client id');
  const expectedServerId = r.str('expected server id');
  const advertise = r.str('advertised address');
  const mac = readMac(r);
  end(r);
  return { lane, clientNonce, clientId, expectedServerId, advertise, mac };
}

export function encodeAccept(a: AcceptReply): Buffer {
  return encodeFrame(FrameKind.Accept, payloadBytesMax, (w) => {
    w.str(a.serverId, 'server id');
    w.u8(a.mac.length);
    w.buf.set(a.mac, w.offset);
    w.offset += a.mac.length;
  });
}

export function decodeAccept(payload: Buffer): AcceptReply {
  const r = new Reader(payload, 0, payload.length);
  const serverId = r.str('server id');
  const mac = readMac(r);
  end(r);
  return { serverId, mac };
}

export function encodeRefuse(reason: string): Buffer {
  return encodeFrame(FrameKind.Refuse, payloadBytesMax, (w) => w.str(reason.slice(0, 200), 'reason'));
}

export function decodeRefuse(payload: Buffer): string {
  return new Reader(payload, 0, payload.length).str('reason');
}

function readMac(r: Reader): Buffer {
  const n = r.u8('mac length');
  if (n !== 0 && n !== macBytes) throw new CodecError(`mac length ${n}, expected 0 or ${macBytes}`);
  return fixedBytes(r, n, 'mac');
}

function fixedBytes(r: Reader, n: number, field: string): Buffer {
  if (r.offset + n > r.end) throw new CodecError(`truncated ${field}`);
  const out = Buffer.from(r.buf.subarray(r.offset, r.offset + n));
  r.offset += n;
  return out;
}

function end(r: Reader): void {
  if (r.offset !== r.end) throw new CodecError(`${r.end - r.offset} trailing bytes in handshake`);
}
