// The peer transport's public surface.
export * from './constants.js';
export { type DialKind, defaultDialer, PeerDialer, type PeerResponse } from './dialer.js';
export { checkCompatibility, type LocalIdentity, requestHeaders } from './headers.js';
export { type PeerHandler, PeerServer, type PeerServerOptions } from './http_server.js';
export { encodeMessageFrame, MessageDecoder } from './message_codec.js';
export { isLinkHeartbeat, MsgAppV2Decoder, MsgAppV2Encoder } from './msgappv2_codec.js';
export * from './peer_endpoints.js';
export { PeerTransport, type PeerTransportOptions } from './transport.js';
export type { RaftHandler, TransportLogger } from './types.js';
