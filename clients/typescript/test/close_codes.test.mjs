// The SDK's close-code table is protocol/vectors/close_codes.json (the server's table,
// checked against its own type by the protocol crate).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CLOSE_CODES, FATAL_CLOSE_CODES } from '../dist/index.js';

test('the close-code table is the protocol’s', () => {
  const table = JSON.parse(readFileSync(new URL('../../../protocol/vectors/close_codes.json', import.meta.url), 'utf8'));
  assert.deepEqual(
    CLOSE_CODES.map((c) => ({ ...c })),
    table.map(({ code, name, reconnect }) => ({ code, name, reconnect })),
  );
  assert.deepEqual([...FATAL_CLOSE_CODES].sort(), [...new Set(table.filter((c) => !c.reconnect).map((c) => c.code))].sort());
});
