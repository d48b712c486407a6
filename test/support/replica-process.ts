/**
 * One gateway replica in its own process, so a test can kill it with SIGKILL the way a machine
 * dies: no close, no lease retired, connections cut. Prints `READY {json}` once listening.
 *
 * Usage: node --import tsx test/support/replica-process.ts POLICY_FILE LEASE_MS
 */
import { loadPolicyFile } from '../../src/core/policy/load.ts';
import { startGateway } from '../../src/server/gateway.ts';

const [policyFile, leaseMs] = process.argv.slice(2);
if (!policyFile) throw new Error('usage: replica-process.ts POLICY_FILE [LEASE_MS]');
const gateway = await startGateway({
  policy: loadPolicyFile(policyFile),
  ...(leaseMs ? { leaseMs: Number(leaseMs) } : {}),
  reconcileMs: 1_000,
});
process.stdout.write(`READY ${JSON.stringify({ api: gateway.api.url, postgres: gateway.postgres })}\n`);
process.on('SIGTERM', () => {
  gateway.close({ drainMs: 5_000 }).then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
