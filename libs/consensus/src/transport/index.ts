export { TcpPeerTransport } from './tcp-peer-transport';
export type { TcpPeerTransportOptions } from './tcp-peer-transport';
export { DEFAULT_TRANSPORT_LIMITS } from './limits';
export type { TransportLimits } from './limits';
export type { PeerCounters, PeerStats, TransportStats, TransportLogger } from './stats';
export { encodeMessage, decodeMessage, CodecError } from './codec';
export { parseHostPort, formatHostPort } from './address';
export type { HostPort } from './address';
