/**
 * The parts of the MySQL protocol the other MySQL tests do not reach with their clients: the
 * mysql2 driver's view of results (text and binary protocol, column definitions included) direct
 * and through Airlock, multi-statements only for clients that asked for them, compression left
 * off, a client that starts with mysql_native_password, and the commands no stock client sends
 * on its own (COM_FIELD_LIST, COM_STMT_SEND_LONG_DATA, COM_STMT_RESET, COM_STMT_CLOSE), spoken
 * here on the wire against the private MariaDB behind the gateway.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import { Cap, Command } from '../src/protocols/mysql/constants.ts';
import { handshakeResponse, parseErr } from '../src/protocols/mysql/messages.ts';
import { type Packet, PacketReader, packet } from '../src/protocols/mysql/packets.ts';
import { eventually, pendingRequestFrom } from './support/eventually.ts';
import {
  MYSQL_CONNECTION,
  type MysqlTestGateway,
  mariadbAvailable,
  mariadbCli,
  mariadbClient,
  mariadbGatewayHooks,
  mysqlThrough,
  type PrivateMariadb,
  startMysqlTestGateway,
} from './support/mariadb.ts';
import { startProcess } from './support/processes.ts';

const TEST_TIMEOUT = 120_000;
const skip = mariadbAvailable();

let target: PrivateMariadb;
let gw: MysqlTestGateway;

mariadbGatewayHooks(skip, (t, g) => {
  target = t;
  gw = g;
});

interface RequestView {
  id: number;
  status: string;
  kind: string;
  summary: string;
  principal: { name: string };
  attributes?: Record<string, unknown>;
}

async function direct(multipleStatements = false): Promise<mysql.Connection> {
  return target.connect({ user: 'app_rw', database: 'app', multipleStatements });
}

async function through(extra: Partial<mysql.ConnectionOptions> = {}): Promise<mysql.Connection> {
  const c = await mysqlThrough(gw, 'agent', extra);
  c.on('error', () => {});
  return c;
}

/** What a mysql2 caller can see of a result: rows, and each column's definition. */
function view(result: [unknown, mysql.FieldPacket[] | undefined]): unknown {
  const [rows, fields] = result;
  return {
    rows,
    fields: (fields ?? []).map((f) => ({
      name: f.name,
      orgName: f.orgName,
      table: f.table,
      orgTable: f.orgTable,
      db: f.db,
      columnType: f.columnType,
      characterSet: f.characterSet,
      columnLength: f.columnLength,
      decimals: f.decimals,
      flags: f.flags,
    })),
  };
}

async function outcome(p: Promise<[unknown, mysql.FieldPacket[] | undefined]>): Promise<unknown> {
  return p.then(view, (e: Error & { errno?: number; sqlState?: string }) => ({
    errno: e.errno,
    sqlState: e.sqlState,
    message: e.message,
  }));
}

// ---------------------------------------------------------------------------------------------
// A caller on the wire, for the commands stock clients do not send.

class WireCaller {
  readonly #reader = new PacketReader(1 << 26);
  readonly #ready: Packet[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.#reader.push(d);
      for (let p = this.#reader.next(); p; p = this.#reader.next()) this.#ready.push(p);
      this.#wake?.();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
    socket.on('error', () => {});
  }

  /** Logs in as the agent: caching_sha2_password, the token sent on "perform full authentication". */
  static async login(port: number, token: string): Promise<WireCaller> {
    const w = new WireCaller(connect(port, '127.0.0.1'));
    await w.next(); // greeting
    const caps =
      Cap.LONG_PASSWORD |
      Cap.PROTOCOL_41 |
      Cap.SECURE_CONNECTION |
      Cap.PLUGIN_AUTH |
      Cap.CONNECT_WITH_DB |
      Cap.TRANSACTIONS;
    w.socket.write(
      packet(
        handshakeResponse({
          capabilities: caps,
          collation: 45,
          user: 'agent',
          authData: Buffer.alloc(32, 1),
          database: MYSQL_CONNECTION,
          plugin: 'caching_sha2_password',
        }),
        1,
      ),
    );
    const more = await w.next();
    assert.deepEqual([...more.payload], [0x01, 0x04], 'perform full authentication');
    w.socket.write(packet(Buffer.from(`${token}\0`), 3));
    const ok = await w.next();
    assert.equal(ok.payload[0], 0x00, `login OK, got ${ok.payload.toString('hex')}`);
    return w;
  }

  async next(): Promise<Packet> {
    for (;;) {
      const p = this.#ready.shift();
      if (p) return p;
      if (this.#closed) throw new Error('the gateway closed the connection');
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }

  command(payload: Buffer): void {
    this.socket.write(packet(payload, 0));
  }

  /** Packets up to and including the next EOF (0xfe, short) or ERR. */
  async untilEof(): Promise<Packet[]> {
    const out: Packet[] = [];
    for (;;) {
      const p = await this.next();
      out.push(p);
      if (p.payload[0] === 0xff || (p.payload[0] === 0xfe && p.payload.length < 9)) return out;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

/** The column name (4th length-encoded string) of a column definition packet. */
function columnName(def: Buffer): string {
  let at = 0;
  let s = '';
  for (let i = 0; i < 5; i++) {
    const len = def[at]!;
    s = def.subarray(at + 1, at + 1 + len).toString('utf8');
    at += 1 + len;
  }
  return s;
}

/** COM_STMT_PREPARE; answers the statement id once its parameter and column definitions are read. */
async function prepare(w: WireCaller, sql: string): Promise<{ id: number; params: number }> {
  w.command(Buffer.concat([Buffer.from([Command.STMT_PREPARE]), Buffer.from(sql, 'utf8')]));
  const ok = await w.next();
  assert.equal(ok.payload[0], 0x00, `PREPARE_OK, got ${ok.payload.toString('latin1')}`);
  const id = ok.payload.readUInt32LE(1);
  const columns = ok.payload.readUInt16LE(5);
  const params = ok.payload.readUInt16LE(7);
  if (params > 0) await w.untilEof();
  if (columns > 0) await w.untilEof();
  return { id, params };
}

function sendLongData(w: WireCaller, id: number, param: number, data: string): void {
  w.command(
    Buffer.concat([
      Buffer.from([Command.STMT_SEND_LONG_DATA]),
      u32(id),
      u16(param),
      Buffer.from(data, 'utf8'),
    ]),
  );
}

/** COM_STMT_EXECUTE of a one-parameter statement whose value came as long data (type BLOB). */
async function executeLong(w: WireCaller, id: number): Promise<Packet> {
  w.command(
    Buffer.concat([
      Buffer.from([Command.STMT_EXECUTE]),
      u32(id),
      Buffer.from([0x00]),
      u32(1),
      Buffer.from([0x00]), // null bitmap
      Buffer.from([0x01]), // types follow
      u16(0xfc),
    ]),
  );
  return w.next();
}

function requestIdOf(err: Packet): number {
  assert.equal(err.payload[0], 0xff, `an error, got ${err.payload.toString('latin1')}`);
  const e = parseErr(err.payload);
  assert.equal(e.errno, 1142, e.message);
  const m = /request (\d+)/.exec(e.message);
  assert.ok(m, e.message);
  return Number(m[1]);
}

async function customerName(id: number): Promise<string> {
  const rows = (await target.query(`SELECT name FROM customers WHERE id = ${Number(id)}`)) as {
    name: string;
  }[];
  return rows[0]!.name;
}

describe('MySQL protocol details through Airlock', { skip, timeout: 10 * 60_000 }, () => {
  test('mysql2 sees the same rows and column definitions direct and through Airlock, text and prepared', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const d = await direct();
    const a = await through();
    try {
      const texts = [
        'SELECT id, customer, total FROM orders ORDER BY id LIMIT 5',
        'SELECT o.id AS order_id, c.name FROM orders o JOIN customers c ON c.name = o.customer WHERE o.id < 4 ORDER BY o.id',
        "SELECT 1 AS a, NULL AS b, 2.5 AS c, 'x' AS d, CAST('2024-02-29 12:34:56' AS DATETIME) AS t",
        'SELECT COUNT(*) AS n, SUM(total) AS s FROM orders',
        'SHOW COLUMNS FROM customers',
        'SELECT no_such_column FROM orders',
        "SELECT CONCAT('é', '😀') AS u",
      ];
      for (const sql of texts)
        assert.deepEqual(await outcome(a.query(sql)), await outcome(d.query(sql)), `text: ${sql}`);
      const prepared: [string, (string | number | null)[]][] = [
        ['SELECT id, customer, total FROM orders WHERE id BETWEEN ? AND ? ORDER BY id', [3, 6]],
        ['SELECT ? AS s, ? AS n, ? AS f, ? AS z', ['text', 42, 1.5, null]],
        ["SELECT id, name, CAST('2024-02-29 12:34:56' AS DATETIME) AS t FROM customers WHERE id = ?", [2]],
        ['SELECT total * ? AS scaled FROM orders WHERE id = ?', [2, 4]],
      ];
      for (const [sql, params] of prepared)
        assert.deepEqual(
          await outcome(a.execute(sql, params)),
          await outcome(d.execute(sql, params)),
          `prepared: ${sql}`,
        );
    } finally {
      await a.end();
      await d.end();
    }
  });

  test('several statements in one query run only for a client that asked for them', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const d = await direct();
    const a = await through();
    try {
      const sql = 'SELECT 1 AS one; SELECT 2 AS two';
      const refused = (await outcome(a.query(sql))) as { errno?: number };
      assert.equal(refused.errno, 1064, JSON.stringify(refused));
      assert.deepEqual(refused, await outcome(d.query(sql)));
    } finally {
      await a.end();
      await d.end();
    }
    const m = await through({ multipleStatements: true });
    try {
      const [results] = await m.query('SELECT 1 AS one; SELECT 2 AS two');
      assert.deepEqual(results, [[{ one: 1 }], [{ two: 2 }]]);
    } finally {
      await m.end();
    }
  });

  test('compression is not offered: mariadb --compress and mysql2 compress fall back', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const sql = 'SELECT id, customer FROM orders ORDER BY id LIMIT 3';
    const a = mariadbCli(gw, sql, { args: ['--compress'] });
    const d = mariadbClient(
      { port: target.port, user: target.app.user, password: target.app.password, database: 'app' },
      sql,
      ['--compress'],
    );
    const [ea, ed] = await Promise.all([a.waitForExit(60_000), d.waitForExit(60_000)]);
    assert.equal(ed.code, 0, d.output());
    assert.equal(ea.code, 0, a.output());
    assert.equal(a.stdout(), d.stdout());
    // mysql2 likewise turns compression on only when the server offers it.
    const z = await through({ compress: true });
    try {
      const [rows] = await z.query('SELECT id FROM orders WHERE id = 3');
      assert.deepEqual(rows, [{ id: 3 }]);
    } finally {
      await z.end();
    }
    // The greeting does not carry CLIENT_COMPRESS, so no client can turn it on.
    const s = connect(gw.mysql.port, '127.0.0.1');
    s.on('error', () => {});
    const greeting = await new Promise<Buffer>((resolve) => s.once('data', resolve));
    s.destroy();
    const nul = greeting.indexOf(0, 5);
    const lowCaps = greeting.readUInt16LE(nul + 1 + 4 + 8 + 1);
    assert.equal(lowCaps & Cap.COMPRESS, 0);
  });

  test('a client that starts with mysql_native_password is switched to caching_sha2_password and logs in', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = mariadbCli(gw, 'SELECT 7 AS seven', { args: ['--default-auth=mysql_native_password'] });
    assert.equal((await p.waitForExit(60_000)).code, 0, p.output());
    assert.equal(p.stdout(), 'seven\n7\n');
    const bad = mariadbCli(gw, 'SELECT 7', {
      token: 'alk_not_a_real_token',
      args: ['--default-auth=mysql_native_password'],
    });
    assert.notEqual((await bad.waitForExit(60_000)).code, 0);
    assert.match(bad.stderr(), /ERROR 1045 \(28000\): Access denied by Airlock/);
  });

  test('a PREPARE behind a failing statement does not redefine the name: EXECUTE of it is unknown', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await through({ multipleStatements: true });
    try {
      await c.query("PREPARE s FROM 'SELECT 1 AS one'");
      const [first] = await c.query('EXECUTE s');
      assert.deepEqual(first, [{ one: 1 }]);
      // The server stops at the error, so its `s` is still the first text; Airlock cannot know
      // which text `s` now stands for and must not take the second one's word for it.
      const failed = await outcome(c.query("SELECT * FROM no_such_table; PREPARE s FROM 'SELECT 2 AS two'"));
      assert.equal((failed as { errno?: number }).errno, 1146);
      const held = outcome(c.query('EXECUTE s'));
      const req = await pendingRequestFrom<RequestView>(gw.api, 'agent', 'EXECUTE s');
      assert.equal(req.kind, 'unknown');
      const denied = await gw.api('POST', `/api/v1/requests/${req.id}/deny`, { reason: 'which s?' }, 'alice');
      assert.equal(denied.status, 200, denied.text);
      assert.match(((await held) as { message?: string }).message ?? '', /denied by Airlock: .*which s\?/);
    } finally {
      await c.end();
    }
  });

  test('a client that names no database picks the connection by its user name', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const p = startProcess('mariadb', [
      '--no-defaults',
      '--batch',
      '-h',
      '127.0.0.1',
      '-P',
      String(gw.mysql.port),
      '-u',
      MYSQL_CONNECTION,
      `-p${gw.tokens.agent}`,
      '-e',
      'SELECT DATABASE() AS db, COUNT(*) AS n FROM app.orders',
    ]);
    assert.equal((await p.waitForExit(60_000)).code, 0, p.output());
    assert.equal(p.stdout(), 'db\tn\napp\t50\n');
    const c = await mysqlThrough(gw, 'agent', { user: MYSQL_CONNECTION, database: undefined });
    try {
      const [rows] = await c.query('SELECT DATABASE() AS db');
      assert.deepEqual(rows, [{ db: 'app' }]);
    } finally {
      await c.end();
    }
  });

  test('COM_QUIT ends the target session too', { timeout: TEST_TIMEOUT }, async () => {
    const c = await through();
    const [rows] = await c.query('SELECT CONNECTION_ID() AS id');
    const id = Number((rows as { id: number }[])[0]!.id);
    const alive = async () =>
      ((await target.query(`SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ${id}`)) as unknown[])
        .length;
    assert.equal(await alive(), 1);
    await c.end();
    await eventually('the target session to end', async () => ((await alive()) === 0 ? true : undefined));
  });

  test('the audit trail of a MySQL session: opened, allowed, held, approved, executed, closed; the chain verifies', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await through();
    await c.query('SELECT id FROM orders WHERE id = 33');
    const held = c.query('DELETE FROM orders WHERE id = 33');
    held.catch(() => {});
    const req = await pendingRequestFrom<RequestView>(gw.api, 'agent', 'DELETE FROM orders WHERE id = 33');
    assert.equal((await gw.api('POST', `/api/v1/requests/${req.id}/approve`, {}, 'bob')).status, 200);
    await held;
    await c.end();
    interface AuditRecord {
      seq: number;
      type: string;
      data: Record<string, unknown>;
    }
    const audit = async () => {
      const res = await gw.api<{ records: AuditRecord[] }>(
        'GET',
        '/api/v1/audit?limit=1000',
        undefined,
        'alice',
      );
      assert.equal(res.status, 200, res.text);
      return res.body.records;
    };
    const read = (await audit()).find(
      (r) => r.type === 'action.allowed' && r.data.summary === 'SELECT id FROM orders WHERE id = 33',
    );
    assert.ok(read, 'the read is audited');
    const session = read.data.sessionId;
    const mine = (r: AuditRecord) =>
      r.data.sessionId === session ||
      r.data.session === session ||
      r.data.requestId === req.id ||
      r.data.id === req.id;
    const records = await eventually('the session to be closed in the audit log', async () => {
      const all = (await audit()).filter(mine);
      return all.some((r) => r.type === 'recording.closed') ? all : undefined;
    });
    assert.deepEqual(
      records.map((r) => r.type),
      [
        'session.opened',
        'action.allowed',
        'request.created',
        'request.approval',
        'request.approved',
        'action.forwarded',
        'request.executed',
        'session.closed',
        'recording.closed',
      ],
    );
    for (const r of records.filter((x) => x.data.protocol !== undefined))
      assert.equal(r.data.protocol, 'mysql', r.type);
    const forwarded = records.find((r) => r.type === 'action.forwarded')!;
    assert.equal(forwarded.data.summary, 'DELETE FROM orders WHERE id = 33');
    assert.deepEqual(forwarded.data.approvers, ['bob']);
    const verify = await gw.api<{ ok: boolean }>('GET', '/api/v1/audit/verify', undefined, 'alice');
    assert.equal(verify.body.ok, true, verify.text);
  });

  test('COM_FIELD_LIST is a read of that table and returns its columns', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const w = await WireCaller.login(gw.mysql.port, gw.tokens.agent);
    try {
      w.command(Buffer.concat([Buffer.from([Command.FIELD_LIST]), Buffer.from('customers\0')]));
      const defs = await w.untilEof();
      const eof = defs.pop()!;
      assert.equal(eof.payload[0], 0xfe, `EOF, got ${eof.payload.toString('latin1')}`);
      assert.deepEqual(
        defs.map((p) => columnName(p.payload)),
        ['id', 'name', 'email', 'card_number'],
      );
      // The session goes on.
      w.command(Buffer.from([Command.PING]));
      assert.equal((await w.next()).payload[0], 0x00);
    } finally {
      w.close();
    }
  });

  test('long data is part of what is approved; COM_STMT_RESET forgets it on both sides', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const w = await WireCaller.login(gw.mysql.port, gw.tokens.agent);
    try {
      const before = await customerName(9);
      const st = await prepare(w, 'UPDATE customers SET name = ? WHERE id = 9');
      assert.equal(st.params, 1);
      // customers writes are held with hold: retry, so each execute answers at once.
      sendLongData(w, st.id, 0, 'Long name ');
      sendLongData(w, st.id, 0, 'A');
      const first = requestIdOf(await executeLong(w, st.id));
      const approved = await gw.api('POST', `/api/v1/requests/${first}/approve`, {}, 'alice');
      assert.equal(approved.status, 200, approved.text);

      // Refused, the execute consumed nothing: the server still holds "Long name A" and this
      // appends to it, so the value is another one and needs its own approval.
      sendLongData(w, st.id, 0, 'B');
      const second = requestIdOf(await executeLong(w, st.id));
      assert.notEqual(second, first);
      assert.equal(await customerName(9), before);

      w.command(Buffer.concat([Buffer.from([Command.STMT_RESET]), u32(st.id)]));
      assert.equal((await w.next()).payload[0], 0x00, 'COM_STMT_RESET answers OK');
      sendLongData(w, st.id, 0, 'Long name A');
      const ran = await executeLong(w, st.id);
      assert.equal(ran.payload[0], 0x00, `the approved value runs, got ${ran.payload.toString('latin1')}`);
      assert.equal(await customerName(9), 'Long name A');
    } finally {
      w.close();
    }
  });

  test('after COM_STMT_CLOSE an execute of that id is of unknown effect, not the closed statement', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const w = await WireCaller.login(gw.mysql.port, gw.tokens.agent);
    try {
      const st = await prepare(w, 'SELECT id FROM orders WHERE id = ?');
      w.command(Buffer.concat([Buffer.from([Command.STMT_CLOSE]), u32(st.id)]));
      // No answer to COM_STMT_CLOSE; a ping shows the session is still in step.
      w.command(Buffer.from([Command.PING]));
      assert.equal((await w.next()).payload[0], 0x00);
      const answer = executeLong(w, st.id);
      const req = await pendingRequestFrom<RequestView>(
        gw.api,
        'agent',
        `execute prepared statement ${st.id}`,
      );
      assert.equal(req.kind, 'unknown');
      const denied = await gw.api('POST', `/api/v1/requests/${req.id}/deny`, { reason: 'closed' }, 'alice');
      assert.equal(denied.status, 200, denied.text);
      const err = await answer;
      assert.equal(err.payload[0], 0xff);
      assert.match(parseErr(err.payload).message, /denied by Airlock: .*closed/);
      await eventually('the request to be denied', async () => {
        const r = await gw.api<{ request: RequestView }>(
          'GET',
          `/api/v1/requests/${req.id}`,
          undefined,
          'alice',
        );
        return r.body.request.status === 'denied' ? true : undefined;
      });
    } finally {
      w.close();
    }
  });
});

/** An address of this host that is not loopback, to be a caller from elsewhere. */
function outsideAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

const outside = outsideAddress();

describe('a caller that is not on this host', {
  skip: skip ?? (outside ? undefined : 'this host has no address besides loopback'),
  timeout: 5 * 60_000,
}, () => {
  let outsider: MysqlTestGateway | undefined;
  let port = 0;
  before(async () => {
    outsider = await startMysqlTestGateway(target, { mysqlListen: `${outside}:0` });
    port = outsider.mysql.port;
  });
  after(async () => {
    await outsider?.close();
  });

  const cli = (args: string[]) =>
    startProcess('mariadb', [
      '--no-defaults',
      '--batch',
      '-h',
      outside!,
      '-P',
      String(port),
      '-u',
      'agent',
      `-p${outsider!.tokens.agent}`,
      ...args,
      MYSQL_CONNECTION,
      '-e',
      'SELECT 5 AS five',
    ]);

  test('the token in clear on a plain connection is refused; encrypted with the server key it is accepted', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    // Connector/C sends the token in clear when the server offers no TLS.
    const plain = cli([]);
    assert.notEqual((await plain.waitForExit(60_000)).code, 0, plain.output());
    assert.match(
      plain.stderr(),
      /ERROR 1045 \(28000\).*Access denied by Airlock: the client sent the Airlock token in clear on an unencrypted connection.*TLS/,
    );
    assert.doesNotMatch(plain.stderr(), new RegExp(outsider!.tokens.agent));
    // Refused like a wrong token: a failed sign-in in the audit log, without the token.
    const failed = await eventually('the refused sign-in in the audit log', async () => {
      const r = await outsider!.api<{ records: { type: string; data: Record<string, unknown> }[] }>(
        'GET',
        '/api/v1/audit/search?type=auth.failed&limit=100',
        undefined,
        'alice',
      );
      return r.body.records.find(
        (a) => a.data.protocol === 'mysql' && a.data.reason === 'AIRLOCK_E_PROTOCOL',
      );
    });
    assert.equal(failed.data.source?.toString().startsWith(`${outside}:`), true, JSON.stringify(failed.data));
    assert.doesNotMatch(JSON.stringify(failed.data), new RegExp(outsider!.tokens.agent));

    // mysql2 asks for the key and encrypts the token with it: no TLS needed.
    const c = await mysql.createConnection({
      host: outside,
      port,
      user: 'agent',
      password: outsider!.tokens.agent,
      database: MYSQL_CONNECTION,
    });
    try {
      const [rows] = await c.query('SELECT 5 AS five');
      assert.deepEqual(rows, [{ five: 5 }]);
    } finally {
      await c.end();
    }
  });
});

describe('recordings of a masked session', { skip, timeout: 5 * 60_000 }, () => {
  let masked: MysqlTestGateway | undefined;
  before(async () => {
    masked = await startMysqlTestGateway(target, {
      extra: `masking:
  - connections: [${MYSQL_CONNECTION}]
    columns: ["customers.card_number"]
    detectors: [email]
    strategy: redact
`,
    });
  });
  after(async () => {
    await masked?.close();
  });

  test('a masked column passed through an expression, an aggregate or a subquery stays masked', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const c = await mysqlThrough(masked!, 'eve', { multipleStatements: true });
    c.on('error', () => {});
    try {
      for (const sql of [
        "SELECT CONCAT(card_number, '') AS x FROM customers WHERE id = 16",
        'SELECT REVERSE(REVERSE(`card_number`)) AS x FROM customers WHERE id = 16',
        'SELECT (SELECT card_number FROM customers WHERE id = 16) AS x',
        'SELECT MAX(card_number) AS x FROM customers WHERE id = 16',
        'SELECT x FROM (SELECT card_number AS x FROM customers WHERE id = 16) t',
        "SELECT 1; SELECT CONCAT('', CARD_NUMBER) AS x FROM customers WHERE id = 16",
      ]) {
        const [rows] = await c.query(sql);
        assert.doesNotMatch(JSON.stringify(rows), /4111 1111 1111 0016/, sql);
      }
      const [bin] = await c.execute('SELECT CONCAT(card_number, ?) AS x FROM customers WHERE id = ?', [
        '',
        16,
      ]);
      assert.doesNotMatch(JSON.stringify(bin), /4111 1111 1111 0016/);
      await c.query("PREPARE s FROM 'SELECT LOWER(card_number) AS x FROM customers WHERE id = 16'");
      const [executed] = await c.query('EXECUTE s');
      assert.doesNotMatch(JSON.stringify(executed), /4111 1111 1111 0016/);
      // Values computed from columns no rule covers are left alone.
      const [plain] = await c.query('SELECT UPPER(name) AS n, COUNT(*) AS k FROM customers WHERE id = 16');
      assert.deepEqual(plain, [{ n: 'CUSTOMER 16', k: 1 }]);
    } finally {
      await c.end();
    }
  });

  test('results with their row counts as for PostgreSQL; an error echoing a masked value is masked in it', {
    timeout: TEST_TIMEOUT,
  }, async () => {
    const g = masked!;
    const c = await mysqlThrough(g, 'eve', { multipleStatements: true });
    c.on('error', () => {});
    const [text] = await c.query('SELECT id, email, card_number FROM customers WHERE id IN (14, 15)');
    const [bin] = await c.execute('SELECT name, email, card_number FROM customers WHERE id = ?', [15]);
    await c.query('SELECT 1; SELECT 2 UNION SELECT 3');
    await assert.rejects(c.query('SELECT * FROM `customer14@example.com`'), /doesn't exist/);
    await c.end();
    const seen = JSON.stringify([text, bin]);
    assert.match(seen, /Customer 15/);
    assert.doesNotMatch(seen, /customer1[45]@example\.com|4111 1111 1111 001[45]/);
    interface RecordingJson {
      id: string;
      principal?: string;
      status: string;
    }
    const recording = await eventually('a sealed recording', async () => {
      const res = await g.api<{ recordings: RecordingJson[] }>(
        'GET',
        `/api/v1/recordings?connection=${MYSQL_CONNECTION}`,
        undefined,
        'alice',
      );
      const r = res.body.recordings.find((x) => x.principal === 'eve');
      return r?.status === 'closed' ? r : undefined;
    });
    const res = await fetch(`${g.apiUrl}/api/v1/recordings/${recording.id}/content`, {
      headers: { authorization: `Bearer ${g.tokens.alice}` },
    });
    assert.equal(res.status, 200);
    const content = await res.text();
    const events = content
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const shown = events.map((e) =>
      e.type === 'result' && e.rows !== undefined ? `result:${e.rows}` : String(e.type),
    );
    // The prepare's own answer is a result without rows; its execute returned one row.
    assert.deepEqual(shown, [
      'statement',
      'result:2',
      'result',
      'statement',
      'result:1',
      'statement',
      'result:3',
      'statement',
      'error',
      'end',
    ]);
    const error = events.find((e) => e.type === 'error')!;
    assert.equal(error.code, 1146);
    assert.doesNotMatch(content, /customer1[45]@example\.com/);
    assert.doesNotMatch(content, /4111 1111 1111 001[45]/);
  });
});
