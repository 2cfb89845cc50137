// A fault-injecting HTTP proxy in front of s3rver (plain node:http, loopback only): 500, 503 SlowDown, a connection
// reset mid-body, a slow first byte. Bounded: it serves at most `maxRequests`, and stops by itself after `lifetimeMs`.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type FaultKind = '500' | '503' | 'reset' | 'slow';

export interface Fault {
  kind: FaultKind;
  /** Which requests it hits: method and a test on the path with its query (e.g. /partNumber=2/). */
  method?: string;
  path?: RegExp;
  /** How many matching requests it hits (default: all). */
  times?: number;
  /** 'slow': delay before the first byte of the answer (default 5 s). */
  delayMs?: number;
}

export interface FaultProxy {
  /** http://127.0.0.1:<port>: use as S3_ENDPOINT. */
  endpoint: string;
  /** Every request seen, in order, with the fault it got (if any). */
  requests: Array<{ method: string; url: string; fault?: FaultKind }>;
  stop(): Promise<void>;
}

const S3_ERROR = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault</RequestId></Error>`;

export async function startFaultProxy(
  upstream: string,
  faults: Fault[],
  o: { lifetimeMs?: number; maxRequests?: number } = {},
): Promise<FaultProxy> {
  const target = new URL(upstream);
  if (!['127.0.0.1', 'localhost', '::1'].includes(target.hostname)) throw new Error('the fault proxy only forwards to loopback');
  const hits = faults.map(() => 0);
  const requests: FaultProxy['requests'] = [];
  const maxRequests = o.maxRequests ?? 20_000;
  const pick = (req: http.IncomingMessage): Fault | undefined => {
    for (const [i, f] of faults.entries()) {
      if (f.method && f.method !== req.method) continue;
      if (f.path && !f.path.test(req.url ?? '')) continue;
      if (f.times !== undefined && hits[i]! >= f.times) continue;
      hits[i]!++;
      return f;
    }
    return undefined;
  };
  const forward = (req: http.IncomingMessage, res: http.ServerResponse, onResponse?: (up: http.IncomingMessage) => void) => {
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      if (onResponse) return onResponse(ur);
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  };
  const server = http.createServer((req, res) => {
    if (requests.length >= maxRequests) {
      res.writeHead(503).end();
      return;
    }
    const fault = pick(req);
    requests.push({ method: req.method ?? '', url: req.url ?? '', ...(fault ? { fault: fault.kind } : {}) });
    if (!fault) return forward(req, res);
    if (fault.kind === '500' || fault.kind === '503') {
      // The request body is read and dropped: nothing reaches the server.
      req.resume();
      req.on('end', () => {
        const body =
          fault.kind === '500'
            ? S3_ERROR('InternalError', 'We encountered an internal error. Please try again.')
            : S3_ERROR('SlowDown', 'Please reduce your request rate.');
        res.writeHead(fault.kind === '500' ? 500 : 503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    if (fault.kind === 'slow') {
      const t = setTimeout(() => forward(req, res), fault.delayMs ?? 5000);
      req.socket.on('close', () => clearTimeout(t));
      return;
    }
    // reset: an upload is cut after some of its body arrived (nothing forwarded); a download after half its body.
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > 0) {
      let seen = 0;
      req.on('data', (c: Buffer) => {
        seen += c.length;
        if (seen >= Math.min(length / 2, 64 * 1024)) req.socket.destroy();
      });
      req.on('end', () => req.socket.destroy());
      return;
    }
    forward(req, res, (ur) => {
      const total = Number(ur.headers['content-length'] ?? 0);
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      let sent = 0;
      ur.on('data', (c: Buffer) => {
        if (sent + c.length >= total / 2) {
          res.write(c.subarray(0, Math.max(0, Math.floor(total / 2) - sent)));
          ur.destroy();
          res.socket?.destroy();
          return;
        }
        sent += c.length;
        res.write(c);
      });
      ur.on('end', () => res.socket?.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const timer = setTimeout(() => void stop(), o.lifetimeMs ?? 10 * 60_000);
  timer.unref();
  const stop = () =>
    new Promise<void>((resolve) => {
      clearTimeout(timer);
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, stop };
}
