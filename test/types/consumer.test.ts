/**
 * The published types, as a user's compiler sees them. Small applications in
 * test/types/fixtures import the package by name, resolved through package.json "exports" to
 * the built .d.ts / .d.cts files, and are compiled with the strictest settings (strict,
 * exactOptionalPropertyTypes, noUncheckedIndexedAccess, skipLibCheck off, so the declaration
 * files themselves are checked too). Here: node/, an ES module application (duet,
 * duet/protocol, duet/client, duet/redis), and browser/, duet/client and duet/vue with the DOM
 * library and no Node types; cjs-consumer.test.ts compiles a CommonJS one and ws-code.test.ts
 * code written for ws (each file has its own time budget). The `@ts-expect-error` lines and
 * `Leaked` checks fail the compile if a member marked internal becomes visible. Needs `npm run
 * build` first (`npm test` runs it).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import {
  compile,
  declarationFiles,
  entryTypes,
  exportsOf,
  fixtures,
  requireBuild,
  root,
  type Compiled,
} from './compile.js';

const T = { timeout: 120_000 };

let compiles: Map<string, Promise<Compiled>> | undefined;

/** The result of compiling `project`; the first call starts both compiles at once (seconds each). */
function compiled(project: string): Promise<Compiled> {
  requireBuild();
  compiles ??= new Map(['node', 'browser'].map((name) => [name, compile(name)]));
  return compiles.get(project)!;
}

describe('the published .d.ts files', () => {
  it('compile with a strict Node application using duet, duet/protocol and duet/client', T, async () => {
    const { code, output } = await compiled('node');
    assert.equal(code, 0, `tsc -p test/types/fixtures/node failed:\n${output}`);
    assert.equal(output.trim(), '');
  });

  it('compile with a strict browser application using duet/client and duet/vue (DOM, no Node types)', T, async () => {
    const { code, output } = await compiled('browser');
    assert.equal(code, 0, `tsc -p test/types/fixtures/browser failed:\n${output}`);
    assert.equal(output.trim(), '');
  });

  it('the .d.cts of every entry point has every export of its .d.ts, with the same meaning', () => {
    requireBuild();
    const entries = [...entryTypes()];
    const all = exportsOf(entries.flatMap(([, files]) => [files.import, files.require]));
    const missing: string[] = [];
    for (const [subpath, files] of entries) {
      const esm = all.get(files.import)!;
      const cjs = all.get(files.require)!;
      for (const [name, meaning] of esm) {
        if (name === 'default' || name === 'module.exports') continue;
        const found = cjs.get(name);
        if (!found || found.type !== meaning.type || found.value !== meaning.value) missing.push(`${subpath} ${name}`);
      }
    }
    assert.deepEqual(missing, []);
    // ws's names, declared on the class: in the .d.cts at the top level of require('duet').
    const main = all.get(entryTypes().get('.')!.require)!;
    for (const name of ['Data', 'Server', 'VerifyClientCallbackAsync', 'CloseEvent']) assert.ok(main.has(name), name);
  });

  it('every entry point in package.json "exports" is used by a fixture', () => {
    const sources = ['node', 'browser', 'cjs']
      .map((project) => readFileSync(join(fixtures, project, 'consumer.ts'), 'utf8'))
      .join('\n');
    const unused = [...entryTypes().keys()]
      .map((subpath) => (subpath === '.' ? 'duet' : `duet/${subpath.slice(2)}`))
      .filter((name) => !sources.includes(`from '${name}'`));
    assert.deepEqual(unused, [], 'add a use of these entry points to a consumer in test/types/fixtures');
  });

  it('have no `any` in them', () => {
    requireBuild();
    const found: string[] = [];
    for (const file of declarationFiles(join(root, 'dist'))) {
      const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node): void => {
        if (node.kind === ts.SyntaxKind.AnyKeyword) {
          const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
          found.push(`${relative(root, file)}:${line + 1}: ${source.text.split('\n')[line]?.trim()}`);
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    assert.deepEqual(found, []);
  });

  it('leave out what is marked @internal (stripInternal)', () => {
    requireBuild();
    const found = declarationFiles(join(root, 'dist'))
      .filter((file) => readFileSync(file, 'utf8').includes('@internal'))
      .map((file) => relative(root, file));
    assert.deepEqual(
      found,
      [],
      'these .d.ts files still carry @internal members: is stripInternal on in the tsconfig that built them?',
    );
  });
});
