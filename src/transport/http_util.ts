// Small HTTP answers shaped like Go's net/http ones (http.Error adds a newline and these headers).
import type { ServerResponse } from 'node:http';

export function httpError(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(`${text}\n`);
}

export function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader('Allow', allow);
  httpError(res, 405, 'Method Not Allowed');
}

/** The path of a request URL, without query. */
export function urlPath(url: string | undefined): string {
  if (!url) return '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
