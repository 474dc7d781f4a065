/**
 * The HTTP ceiling for the benchmarks: a trivial node:http server that reads the request body and answers
 * 201 with a small JSON body at once, on a keep-alive connection. Run as its own process (like a node):
 * `node --require ./tools/swc-register.js bench/support/trivial-server.ts`; PORT (default 0 = any free port); prints `LISTENING <port>`.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

const answer = Buffer.from(
  '{"streamId":"bench-0","firstRevision":0,"lastRevision":0,"firstPosition":0,"lastPosition":0}',
);

const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    const head: Record<string, string | number> = {
      'content-type': 'application/json; charset=utf-8',
      'content-length': answer.length,
    };
    // Echoed like the event store does (bench/soak.lua keeps each request's send time in it).
    const id = req.headers['x-request-id'];
    if (typeof id === 'string') head['x-request-id'] = id;
    res.writeHead(201, head);
    res.end(answer);
  });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
