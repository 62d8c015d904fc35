// Bundles the SDK (with its MessagePack codec) into one ES module for the node's web
// pages: crates/gateway/web/assets/chathub-client.js, served at /assets/chathub-client.js
// and embedded in the binary, so running the hub needs no npm. Committed; `--check`
// (run by `npm test`) fails when the committed file is not what the sources build.
import { build } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, '..', '..', '..', 'crates', 'gateway', 'web', 'assets', 'chathub-client.js');
const result = await build({
  entryPoints: [join(here, '..', 'src', 'index.ts')],
  bundle: true,
  format: 'esm',
  target: 'es2020',
  platform: 'browser',
  write: false,
  legalComments: 'inline',
  banner: {
    js: '// chathub-client, bundled for the browser from clients/typescript (npm run bundle). Do not edit.',
  },
});
const code = result.outputFiles[0].text;
if (process.argv.includes('--check')) {
  const committed = readFileSync(target, 'utf8');
  if (committed !== code) {
    console.error(`${target} is not what clients/typescript builds: run \`npm run bundle\` there and commit it`);
    process.exit(1);
  }
  console.log('the committed browser bundle matches the sources');
} else {
  writeFileSync(target, code);
  console.log(`wrote ${target} (${code.length} bytes)`);
}
