import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { ownSignalFetch } from './own-signal-fetch.ts';

test('many requests on one session signal leave no listeners on it, and aborting it still aborts', async (t) => {
  let hang = false;
  const server = createServer((req, res) => {
    if (hang) return; // never answers: the abort must end it
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  const session = new AbortController();
  for (let i = 0; i < 200; i++) {
    const res = await ownSignalFetch(url, { method: 'POST', body: 'x', signal: session.signal });
    assert.equal(await res.text(), 'ok');
  }
  assert.ok(getEventListeners(session.signal, 'abort').length <= 1);
  hang = true;
  const pending = ownSignalFetch(url, { signal: session.signal });
  setTimeout(() => session.abort(), 50);
  await assert.rejects(pending, /abort/i);
  server.closeAllConnections();
});
