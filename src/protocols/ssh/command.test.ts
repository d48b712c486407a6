import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { classifyCommand, parseCommandLine, scpTransfer } from './command.ts';

const texts = (line: string) => parseCommandLine(line).commands.map((c) => c.words.join(' '));
const commandFields = (line: string) => classifyCommand(line).flatMap((p) => p.fields?.command ?? []);

test('splits a line into the commands it runs', () => {
  assert.deepEqual(texts('systemctl restart api'), ['systemctl restart api']);
  assert.deepEqual(texts('uptime; rm -rf /tmp/x && echo ok || echo no | wc -l & sleep 1'), [
    'uptime',
    'rm -rf /tmp/x',
    'echo ok',
    'echo no',
    'wc -l',
    'sleep 1',
  ]);
  assert.deepEqual(texts('a\nb |& c'), ['a', 'b', 'c']);
  assert.deepEqual(texts('echo hi # rm -rf /'), ['echo hi']);
});

test('quotes and escapes are removed before matching, so quoting cannot hide a command', () => {
  assert.deepEqual(texts(`'rm' -"rf" \\/`), ['rm -rf /']);
  assert.deepEqual(texts(`echo "a;b" 'c&&d' e\\;f`), ['echo a;b c&&d e;f']);
  assert.deepEqual(texts('sys\\\ntemctl status'), ['systemctl status']);
});

test('what runs only at run time makes the line unknown', () => {
  for (const line of [
    'echo $(rm -rf /)',
    'echo `id`',
    'echo "$(id)"',
    '(cd /; rm -rf x)',
    'diff <(ls a) <(ls b)',
    'cat <<EOF\nhi\nEOF',
    'if true; then rm -rf /; fi',
    '$CMD arg',
    "echo 'unterminated",
    "echo $'\\x41'",
    '{ rm -rf /; }',
    '{rm,-rf,/}',
    'echo hi\0rm -rf /',
  ]) {
    const parts = classifyCommand(line);
    assert.ok(
      parts.some((p) => p.kind === 'unknown'),
      `${JSON.stringify(line)} → ${JSON.stringify(parts)}`,
    );
  }
  // The commands we could still see are judged too, so a deny rule still catches them.
  assert.ok(commandFields('echo $(date); rm -rf /').includes('rm -rf /'));
});

test('output redirections to files are writes; descriptor duplication and /dev/null are not', () => {
  const parts = classifyCommand('echo x > /etc/motd 2>&1');
  assert.deepEqual(
    parts.map((p) => [p.kind, p.fields?.file?.[0] ?? p.fields?.command?.[0]]),
    [
      ['exec', 'echo x'],
      ['write', '/etc/motd'],
    ],
  );
  assert.deepEqual(
    classifyCommand('make 2>/dev/null >>/dev/null < input').map((p) => p.kind),
    ['exec'],
  );
  assert.deepEqual(
    classifyCommand('cmd &>> log').map((p) => p.kind),
    ['exec', 'write'],
  );
});

test('legacy scp is a transfer (download) or a write (upload) of a path', () => {
  assert.deepEqual(scpTransfer(parseCommandLine('scp -f /etc/hosts').commands[0]!), {
    direction: 'download',
    path: '/etc/hosts',
  });
  assert.deepEqual(
    classifyCommand('scp -t -- /srv/in').map((p) => [p.kind, p.fields?.file]),
    [['write', ['/srv/in']]],
  );
});

test('empty lines are unknown, not harmless', () => {
  assert.deepEqual(
    classifyCommand('   ').map((p) => p.kind),
    ['unknown'],
  );
});

// Property tests: arbitrary input never throws and always yields at least one part; words
// built from safe characters and joined by operators come back exactly; any quoting of a word
// yields the same word.
const safeWord = fc.stringMatching(/^[A-Za-z0-9_./:=+,-]{1,12}$/).filter((w) => !/^\d+$/.test(w));
const command = fc.array(safeWord, { minLength: 1, maxLength: 5 });
const operator = fc.constantFrom('; ', ' && ', ' || ', ' | ', ' & ', '\n', ';', '|');

test('property: any text classifies without throwing, into at least one part', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (s) => {
      const parts = classifyCommand(s);
      assert.ok(parts.length > 0);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(
      fc.string({ unit: fc.constantFrom(...'ab $()`\'"\\;&|<>#{}\n\t*2-'), maxLength: 60 }),
      (s) => {
        assert.ok(classifyCommand(s).length > 0);
      },
    ),
    { numRuns: 3000 },
  );
});

test('property: commands joined by operators come back one by one', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(command, operator), { minLength: 1, maxLength: 6 }), (items) => {
      const line = items.map(([words, op], i) => words.join(' ') + (i < items.length - 1 ? op : '')).join('');
      const expected = items.map(([w]) => w.join(' '));
      assert.deepEqual(texts(line), expected);
    }),
    { numRuns: 1000 },
  );
});

test('property: however a word is quoted, it is the same word', () => {
  const quote = (w: string, how: number): string => {
    switch (how) {
      case 0:
        return `'${w.replaceAll("'", `'\\''`)}'`;
      case 1:
        return `"${w.replace(/[$`"\\]/g, '\\$&')}"`;
      default:
        return w.replace(/[^A-Za-z0-9]/g, '\\$&');
    }
  };
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.string({ minLength: 1, maxLength: 10 }).filter((w) => !w.includes('\n')),
          fc.nat(2),
        ),
        {
          minLength: 1,
          maxLength: 4,
        },
      ),
      (ws) => {
        const line = `printf ${ws.map(([w, how]) => quote(w, how)).join(' ')}`;
        const parsed = parseCommandLine(line);
        assert.deepEqual(parsed.unknown, [], line);
        assert.deepEqual(parsed.commands.length, 1, line);
        assert.deepEqual(parsed.commands[0]!.words, ['printf', ...ws.map(([w]) => w)], line);
      },
    ),
    { numRuns: 2000 },
  );
});
