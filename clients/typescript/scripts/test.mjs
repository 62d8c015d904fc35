// `npm test`: builds the package, type-checks every protocol example against its types,
// checks the committed browser bundle, builds the API docs (TypeDoc, warnings are
// errors), then runs the tests against real chathub processes (node --test).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args) => execFileSync(cmd, args, { cwd: here, stdio: 'inherit' });
const bin = (name) => join(here, 'node_modules', '.bin', name);

console.log('== tsc (the package)');
run(bin('tsc'), ['-p', 'tsconfig.json']);
console.log('== the protocol examples against the types');
run(process.execPath, ['scripts/check-vectors.mjs']);
run(bin('tsc'), ['-p', 'tsconfig.test.json']);
console.log('== the browser bundle');
run(process.execPath, ['scripts/bundle.mjs', '--check']);
console.log('== typedoc');
const docs = mkdtempSync(join(tmpdir(), 'chathub-client-docs-'));
try {
  run(bin('typedoc'), ['--out', docs, '--logLevel', 'Warn']);
} finally {
  rmSync(docs, { recursive: true, force: true });
}
console.log('== node --test');
const tests = readdirSync(join(here, 'test'))
  .filter((f) => f.endsWith('.test.mjs'))
  .map((f) => join('test', f));
run(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...tests]);
