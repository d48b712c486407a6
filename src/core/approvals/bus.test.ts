import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InProcessEventBus, type RequestEvent } from './bus.ts';

test('publishes to every subscriber until it unsubscribes; a throwing listener does not stop the others', () => {
  const bus = new InProcessEventBus();
  const seen: RequestEvent[] = [];
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  bus.subscribe(() => {
    throw new Error('broken stream');
  });
  const off = bus.subscribe((e) => seen.push(e));
  bus.publish({ type: 'request', id: 1, status: 'approved' });
  off();
  bus.publish({ type: 'request', id: 2, status: 'denied' });
  assert.deepEqual(seen, [{ type: 'request', id: 1, status: 'approved' }]);
  return new Promise<void>((resolve) =>
    setImmediate(() => {
      process.off('warning', onWarning);
      assert.ok(warnings.some((w) => w.includes('broken stream')));
      resolve();
    }),
  );
});
