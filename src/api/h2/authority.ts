// What Node's HTTP/2 server (nghttp2) accepts as :authority (and host), and how to repair what it
// rejects. grpc-go clients dialing "passthrough:///http://127.0.0.1:2379" (etcdctl 3.4 does, for
// its Maintenance calls) send the whole "http://127.0.0.1:2379"; grpc-go servers take it, nghttp2
// resets the stream with PROTOCOL_ERROR.

// nghttp2's check_authority: RFC 3986 unreserved, sub-delims, ':', '@', '%', '[' and ']'.
const VALID = new Uint8Array(256);
for (const c of "!$%&'()*+,-.0123456789:;=@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz~") {
  VALID[c.charCodeAt(0)] = 1;
}

/** Whether nghttp2 accepts the value (a latin1 string, one char per octet) as :authority. */
export function isValidAuthority(value: string): boolean {
  if (value.length === 0) return false;
  for (let i = 0; i < value.length; i++) if (VALID[value.charCodeAt(i) & 0xff] !== 1) return false;
  return true;
}

// "scheme://", or "scheme:" right before a path ("unix:/run/etcd.sock"); never the "host:" of host:port
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:(?:\/\/|(?=\/))/;

/** Used when nothing of the original value can be kept (unix socket paths, garbage). */
export const FALLBACK_AUTHORITY = 'localhost';

/**
 * A valid authority for a rejected one: the scheme and any path dropped ("http://h:1/x" -> "h:1");
 * "localhost" when nothing valid is left ("unix:///run/etcd.sock").
 */
export function repairAuthority(value: string): string {
  if (isValidAuthority(value)) return value;
  let v = value.trim().replace(SCHEME, '');
  const slash = v.search(/[/?#]/);
  if (slash >= 0) v = v.slice(0, slash);
  // userinfo is not part of what a server should route on
  const at = v.lastIndexOf('@');
  if (at >= 0) v = v.slice(at + 1);
  return isValidAuthority(v) ? v : FALLBACK_AUTHORITY;
}
