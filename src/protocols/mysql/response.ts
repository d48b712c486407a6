/**
 * Follows a target's response to one command, frame by frame, to know where it ends (the
 * gateway relays the bytes unchanged and only needs the boundaries), and to pick out the few
 * packets the session acts on: PREPARE_OK (statement id, parameter count) and the LOCAL INFILE
 * request.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response.html
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_prepare.html#sect_protocol_com_stmt_prepare_response
 *
 * The gateway never offers CLIENT_DEPRECATE_EOF, so column definitions and rows end in a classic
 * EOF packet (0xfe, payload shorter than 9 bytes; a longer 0xfe packet is a row).
 */
import { Header, Status } from './constants.ts';
import { eofStatus, okStatus } from './messages.ts';
import { Cursor, type Frame, MysqlProtocolError } from './packets.ts';

/** What a command's response looks like. */
export type Expect =
  /** COM_QUERY, COM_STMT_EXECUTE, COM_PROCESS_INFO: OK, ERR, LOCAL INFILE or result sets. */
  | 'result'
  /** One OK, ERR or EOF packet (COM_PING, COM_INIT_DB, COM_SET_OPTION, ...). */
  | 'ok'
  /** COM_STMT_PREPARE. */
  | 'prepare'
  /** COM_FIELD_LIST: column definitions up to EOF, or ERR. */
  | 'fields'
  /** COM_STMT_FETCH: rows up to EOF, or ERR. */
  | 'rows'
  /** COM_STATISTICS: one string packet. */
  | 'string';

export type TrackEvent =
  | { readonly type: 'done'; readonly error: boolean }
  | {
      readonly type: 'prepared';
      readonly statementId: number;
      readonly params: number;
      readonly columns: number;
    }
  | { readonly type: 'local-infile'; readonly seq: number; readonly file: string };

export type Phase = 'first' | 'columns' | 'columns-eof' | 'rows' | 'packets' | 'infile' | 'done';

export class ResponseTracker {
  #expect: Expect = 'ok';
  #phase: Phase = 'done';
  #remaining = 0;
  #binary = false;

  /** Where in the response the next frame falls (the session reads column definitions and rows). */
  get phase(): Phase {
    return this.#phase;
  }

  get expect(): Expect {
    return this.#expect;
  }

  get binary(): boolean {
    return this.#binary;
  }

  get active(): boolean {
    return this.#phase !== 'done';
  }

  /** A LOCAL INFILE request was seen: the caller's file packets go up, then an OK/ERR comes back. */
  get inInfile(): boolean {
    return this.#phase === 'infile';
  }

  start(expect: Expect, binary = false): void {
    this.#expect = expect;
    this.#binary = binary;
    this.#phase = expect === 'fields' || expect === 'rows' ? 'rows' : 'first';
    this.#remaining = 0;
  }

  /** The caller finished sending its file (the empty packet): the target answers next. */
  infileSent(): void {
    if (this.#phase === 'infile') this.#phase = 'first';
  }

  /** Feed one frame from the target; returns what it means, if anything. */
  frame(f: Frame): TrackEvent | undefined {
    if (f.continued) return undefined; // the rest of a packet already accounted for
    if (this.#phase === 'done')
      throw new MysqlProtocolError('the target sent a packet when no response was due');
    const p = f.payload;
    const head = p[0];
    switch (this.#phase) {
      case 'first': {
        if (this.#expect === 'string') return this.#end(head === Header.ERR);
        if (head === Header.ERR) return this.#end(true);
        if (this.#expect === 'ok') return this.#end(false);
        if (this.#expect === 'prepare') {
          if (head !== Header.OK)
            throw new MysqlProtocolError('the target answered a prepare with an unexpected packet');
          const c = new Cursor(p, 'the PREPARE_OK packet');
          c.u8();
          const statementId = c.u32();
          const columns = c.u16();
          const params = c.u16();
          this.#remaining = (params > 0 ? params + 1 : 0) + (columns > 0 ? columns + 1 : 0);
          this.#phase = this.#remaining > 0 ? 'packets' : 'done';
          return { type: 'prepared', statementId, params, columns };
        }
        if (head === Header.OK) {
          const status = okStatus(p) ?? 0;
          return status & Status.MORE_RESULTS_EXISTS ? undefined : this.#end(false);
        }
        if (head === Header.LOCAL_INFILE) {
          this.#phase = 'infile';
          return { type: 'local-infile', seq: f.seq, file: p.subarray(1).toString('utf8') };
        }
        const c = new Cursor(p, 'the column count');
        const n = c.lenenc();
        if (n === null || n === 0 || c.remaining > 0)
          throw new MysqlProtocolError('the target sent a malformed column count');
        this.#remaining = n;
        this.#phase = 'columns';
        return undefined;
      }
      case 'columns':
        if (--this.#remaining === 0) this.#phase = 'columns-eof';
        return undefined;
      case 'columns-eof': {
        if (head !== Header.EOF || p.length >= 9)
          throw new MysqlProtocolError('the target did not end the column definitions with EOF');
        const status = eofStatus(p) ?? 0;
        // A cursor was opened (COM_STMT_EXECUTE with a cursor flag): rows come with COM_STMT_FETCH.
        if (this.#binary && status & Status.CURSOR_EXISTS) return this.#end(false);
        this.#phase = 'rows';
        return undefined;
      }
      case 'rows':
        if (head === Header.ERR) return this.#end(true);
        if (head === Header.EOF && p.length < 9) {
          const status = eofStatus(p) ?? 0;
          if (this.#expect === 'result' && status & Status.MORE_RESULTS_EXISTS) {
            this.#phase = 'first';
            return undefined;
          }
          return this.#end(false);
        }
        return undefined;
      case 'packets':
        if (--this.#remaining === 0) return this.#end(false);
        return undefined;
      case 'infile':
        throw new MysqlProtocolError('the target sent a packet while waiting for the caller\u2019s file');
    }
  }

  #end(error: boolean): TrackEvent {
    this.#phase = 'done';
    return { type: 'done', error };
  }
}
