/**
 * The SFTP packets Airlock needs to judge file operations. Written by hand because the relay
 * must pass the caller's bytes through unchanged and only look at each request: ssh2's SFTP
 * server would make Airlock re-issue every operation itself. Version 3, which OpenSSH speaks:
 * https://datatracker.ietf.org/doc/html/draft-ietf-secsh-filexfer-02
 */
import type { ActionPart } from '../../core/action.ts';

/** sftp-server's own limit is 256 KiB; anything far beyond is not SFTP. */
export const MAX_SFTP_PACKET = 1024 * 1024;

export const SftpType = {
  INIT: 1,
  VERSION: 2,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  SETSTAT: 9,
  FSETSTAT: 10,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  REALPATH: 16,
  STAT: 17,
  RENAME: 18,
  READLINK: 19,
  SYMLINK: 20,
  STATUS: 101,
  EXTENDED: 200,
} as const;

const OPEN_WRITE = 0x02 | 0x04 | 0x08 | 0x10 | 0x20; // WRITE APPEND CREAT TRUNC EXCL
const FX_PERMISSION_DENIED = 3;

export class SftpProtocolError extends Error {}

/** Splits a byte stream into whole packets (uint32 length, then that many bytes). */
export class PacketReader {
  #chunks: Buffer[] = [];
  #size = 0;

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  get buffered(): number {
    return this.#size;
  }

  /** The next whole packet including its length prefix, or undefined until more bytes arrive. */
  next(): Buffer | undefined {
    if (this.#size < 4) return undefined;
    if (this.#chunks[0]!.length < 4) this.#chunks = [Buffer.concat(this.#chunks)];
    const len = this.#chunks[0]!.readUInt32BE(0);
    if (len < 1 || len > MAX_SFTP_PACKET)
      throw new SftpProtocolError(
        `an SFTP packet of ${len} bytes is outside the allowed 1..${MAX_SFTP_PACKET}`,
      );
    if (this.#size < len + 4) return undefined;
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    const packet = all.subarray(0, len + 4);
    const rest = all.subarray(len + 4);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#size = rest.length;
    return packet;
  }
}

class Cursor {
  #at: number;
  constructor(
    readonly buf: Buffer,
    at: number,
  ) {
    this.#at = at;
  }
  u32(): number {
    if (this.#at + 4 > this.buf.length) throw new SftpProtocolError('truncated SFTP packet');
    const v = this.buf.readUInt32BE(this.#at);
    this.#at += 4;
    return v;
  }
  string(): string {
    const len = this.u32();
    if (this.#at + len > this.buf.length) throw new SftpProtocolError('truncated SFTP string');
    const s = this.buf.toString('utf8', this.#at, this.#at + len);
    this.#at += len;
    return s;
  }
}

export interface SftpRequest {
  readonly type: number;
  /** Request id; undefined for INIT. */
  readonly id: number | undefined;
  /** Parts to judge; empty when the request needs no decision (reads of metadata, handle I/O). */
  readonly parts: readonly ActionPart[];
  /** One line for reviewers. */
  readonly summary: string;
}

const read = (path: string): ActionPart => ({
  kind: 'transfer',
  text: `read ${path}`,
  why: 'an SFTP download',
  fields: { file: [path] },
});
const write = (op: string, ...paths: string[]): ActionPart => ({
  kind: 'write',
  text: `${op} ${paths.join(' → ')}`,
  why: `an SFTP ${op}`,
  fields: { file: paths },
});

/** Extended requests that only read metadata or act on handles already judged. */
const HARMLESS_EXTENDED = new Set([
  'statvfs@openssh.com',
  'fstatvfs@openssh.com',
  'fsync@openssh.com',
  'limits@openssh.com',
  'expand-path@openssh.com',
  'home-directory',
  'users-groups-by-id@openssh.com',
]);

/**
 * What a caller → host packet asks for. Handle operations (READ, WRITE, CLOSE, FSTAT, READDIR)
 * ride on an OPEN/OPENDIR already judged; STAT, LSTAT, REALPATH, READLINK and OPENDIR only
 * reveal names and attributes and pass (directory listings are not file contents). FSETSTAT
 * changes attributes through a handle and passes with it.
 */
export function classifySftp(packet: Buffer): SftpRequest {
  if (packet.length < 5) throw new SftpProtocolError('empty SFTP packet');
  const type = packet[4]!;
  const cur = new Cursor(packet, 5);
  if (type === SftpType.INIT) return { type, id: undefined, parts: [], summary: 'sftp init' };
  const id = cur.u32();
  switch (type) {
    case SftpType.OPEN: {
      const path = cur.string();
      const flags = cur.u32();
      const part = flags & OPEN_WRITE ? write('write', path) : read(path);
      return { type, id, parts: [part], summary: `sftp ${part.text}` };
    }
    case SftpType.SETSTAT:
      return one(type, id, write('setstat', cur.string()));
    case SftpType.REMOVE:
      return one(type, id, write('remove', cur.string()));
    case SftpType.MKDIR:
      return one(type, id, write('mkdir', cur.string()));
    case SftpType.RMDIR:
      return one(type, id, write('rmdir', cur.string()));
    case SftpType.RENAME: {
      const from = cur.string();
      return one(type, id, write('rename', from, cur.string()));
    }
    case SftpType.SYMLINK: {
      // OpenSSH sends (target, link) — the reverse of the draft; either way both are named.
      const a = cur.string();
      return one(type, id, write('symlink', a, cur.string()));
    }
    case SftpType.EXTENDED: {
      const name = cur.string();
      if (HARMLESS_EXTENDED.has(name)) return { type, id, parts: [], summary: `sftp ${name}` };
      if (name === 'posix-rename@openssh.com' || name === 'hardlink@openssh.com') {
        const a = cur.string();
        return one(type, id, write(name.split('@')[0]!, a, cur.string()));
      }
      if (name === 'lsetstat@openssh.com') return one(type, id, write('setstat', cur.string()));
      return one(type, id, {
        kind: 'unknown',
        text: `sftp extension ${name}`,
        why: `the SFTP extension "${name}" is not one Airlock knows`,
      });
    }
    case SftpType.CLOSE:
    case SftpType.READ:
    case SftpType.WRITE:
    case SftpType.LSTAT:
    case SftpType.FSTAT:
    case SftpType.FSETSTAT:
    case SftpType.OPENDIR:
    case SftpType.READDIR:
    case SftpType.REALPATH:
    case SftpType.STAT:
    case SftpType.READLINK:
      return { type, id, parts: [], summary: `sftp request ${type}` };
    default:
      return one(type, id, {
        kind: 'unknown',
        text: `sftp request type ${type}`,
        why: `SFTP request type ${type} is not one Airlock knows`,
      });
  }
}

function one(type: number, id: number, part: ActionPart): SftpRequest {
  return { type, id, parts: [part], summary: `sftp ${part.text}` };
}

/** SSH_FXP_STATUS with SSH_FX_PERMISSION_DENIED: how a refused request is answered. */
export function permissionDenied(id: number, message: string): Buffer {
  const msg = Buffer.from(message, 'utf8');
  const out = Buffer.alloc(4 + 1 + 4 + 4 + 4 + msg.length + 4);
  let at = out.writeUInt32BE(out.length - 4, 0);
  at = out.writeUInt8(SftpType.STATUS, at);
  at = out.writeUInt32BE(id, at);
  at = out.writeUInt32BE(FX_PERMISSION_DENIED, at);
  at = out.writeUInt32BE(msg.length, at);
  at += msg.copy(out, at);
  out.writeUInt32BE(0, at); // language tag
  return out;
}
