// The browser client follows the one close-code table (protocol/vectors/close_codes.json):
// it gives up on exactly the codes the table says not to reconnect after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const table = JSON.parse(readFileSync(`${root}/protocol/vectors/close_codes.json`, 'utf8'));
const { FATAL_CLOSE_CODES } = await import(`${root}/crates/gateway/web/assets/chathub-client.js`);

test('the browser client gives up exactly where the table says not to reconnect', () => {
  const fatal = new Set(table.filter((row) => !row.reconnect).map((row) => row.code));
  const reconnect = new Set(table.filter((row) => row.reconnect).map((row) => row.code));
  assert.deepEqual([...FATAL_CLOSE_CODES].sort(), [...fatal].sort());
  for (const code of reconnect) {
    assert.ok(!fatal.has(code), `code ${code} is both fatal and reconnect in the table`);
  }
});
