/**
 * Code written for ws and @types/ws compiles against duet's types, unchanged:
 * test/types/fixtures/ws-code (ws's README examples as a TypeScript user types them, an ES
 * module and a CommonJS file) is copied into a temporary project and compiled twice, with the
 * strictest settings: with node_modules/ws being ws (and @types/ws), which proves it is ws
 * code, and with node_modules/ws being duet, as npm `overrides` installs it. Needs `npm run
 * build` first.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { compileAsPackage, requireBuild, root } from './compile.js';

const T = { timeout: 120_000 };

describe('code written for ws', () => {
  it('compiles against ws and, unchanged, with duet installed as ws', T, async () => {
    requireBuild();
    const [onWs, onDuet] = await Promise.all([
      compileAsPackage('ws-code', 'nodenext', { ws: join(root, 'node_modules', 'ws') }),
      compileAsPackage('ws-code', 'nodenext', { ws: root }),
    ]);
    // First with ws itself: the fixture is ws code (a line only duet accepts fails here).
    assert.equal(onWs.code, 0, `test/types/fixtures/ws-code does not compile against ws:\n${onWs.output}`);
    assert.equal(onDuet.code, 0, `test/types/fixtures/ws-code does not compile against duet:\n${onDuet.output}`);
    assert.equal(onDuet.output.trim(), '');
  });
});
