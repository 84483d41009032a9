/**
 * The CommonJS declarations (.d.cts, package.json's `require` condition) as a CommonJS
 * TypeScript application sees them: test/types/fixtures/cjs, a package without "type":
 * "module" (`import WebSocket = require('duet')`, default and named imports, the other entry
 * points), copied into a temporary project whose node_modules/duet links to this repository,
 * compiled with `module` node16 (which may not import an ES module's types) and nodenext, with
 * the strictest settings. Needs `npm run build` first.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileAsPackage, requireBuild, root, type Compiled } from './compile.js';

const T = { timeout: 120_000 };

let compiles: Map<string, Promise<Compiled>> | undefined;

/** The result of compiling with `module`; the first call starts both compiles at once. */
function compiled(module: 'node16' | 'nodenext'): Promise<Compiled> {
  requireBuild();
  compiles ??= new Map((['node16', 'nodenext'] as const).map((m) => [m, compileAsPackage('cjs', m, { duet: root })]));
  return compiles.get(module)!;
}

describe('the published .d.cts files', () => {
  for (const module of ['node16', 'nodenext'] as const) {
    it(`compile with a strict CommonJS application (module ${module}): require('duet') is the class`, T, async () => {
      const { code, output } = await compiled(module);
      assert.equal(code, 0, `tsc on test/types/fixtures/cjs (module ${module}) failed:\n${output}`);
      assert.equal(output.trim(), '');
    });
  }
});
