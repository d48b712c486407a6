/**
 * The request body of `git-receive-pack` over smart HTTP: ref-update commands, then the pack.
 * https://git-scm.com/docs/pack-protocol#_reference_update_request_and_packfile_transfer
 */
import { PktLineReader } from './pktline.ts';

export const ZERO_OID = /^0+$/;

export interface RefUpdate {
  readonly oldOid: string;
  readonly newOid: string;
  readonly ref: string;
}

export interface PushRequest {
  readonly updates: readonly RefUpdate[];
  readonly capabilities: readonly string[];
  readonly shallow: readonly string[];
  /** Signed pushes carry a certificate Airlock does not check; they are judged `unknown`. */
  readonly pushCert: boolean;
  /** The packfile (empty for deletions only). */
  readonly pack: Buffer;
}

export class PushParseError extends Error {}

const COMMAND = /^([0-9a-f]{40}|[0-9a-f]{64}) ([0-9a-f]{40}|[0-9a-f]{64}) (.+)$/;

/** Parses a whole request body; the pkt-line reader underneath takes any split of it. */
export function parsePushRequest(body: Buffer): PushRequest {
  const reader = new PktLineReader();
  const updates: RefUpdate[] = [];
  const shallow: string[] = [];
  let capabilities: string[] = [];
  let pushCert = false;
  let first = true;
  let flushed = false;
  // Read packet by packet so the bytes after the flush (the pack) are left untouched.
  let offset = 0;
  while (!flushed) {
    if (offset >= body.length) break;
    const step = Math.min(body.length - offset, 4);
    const pkts = reader.push(body.subarray(offset, offset + step));
    offset += step;
    // A header announces its length: give the reader exactly that packet and no more.
    const pending = reader.rest();
    if (pkts.length === 0 && pending.length === 4) {
      const len = Number.parseInt(pending.toString('latin1'), 16);
      if (len > 4 && offset + len - 4 <= body.length) {
        pkts.push(...reader.push(body.subarray(offset, offset + len - 4)));
        offset += len - 4;
      }
    }
    for (const p of pkts) {
      if (p.type === 'flush') {
        flushed = true;
        break;
      }
      if (p.type !== 'data') throw new PushParseError(`unexpected ${p.type} packet in a push`);
      let line = p.payload.toString('utf8');
      if (line.endsWith('\n')) line = line.slice(0, -1);
      if (line.startsWith('shallow ')) {
        shallow.push(line.slice(8));
        continue;
      }
      if (line.startsWith('push-cert')) {
        pushCert = true;
        continue;
      }
      if (pushCert) continue;
      if (first) {
        const nul = line.indexOf('\0');
        if (nul >= 0) {
          capabilities = line
            .slice(nul + 1)
            .trim()
            .split(' ')
            .filter(Boolean);
          line = line.slice(0, nul);
        }
        first = false;
      }
      const m = COMMAND.exec(line);
      if (!m) throw new PushParseError(`not a ref update command: ${JSON.stringify(line.slice(0, 100))}`);
      updates.push({ oldOid: m[1]!, newOid: m[2]!, ref: m[3]! });
    }
  }
  if (!flushed && body.length > 0) throw new PushParseError('the push commands end without a flush packet');
  return { updates, capabilities, shallow, pushCert, pack: body.subarray(offset) };
}
