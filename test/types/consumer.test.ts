/**
 * The published types, as a user's compiler sees them. Two small applications in
 * test/types/fixtures (a Node one: duet, duet/protocol, duet/client; a browser one:
 * duet/client, duet/vue) import the package by name, resolved through package.json
 * "exports" to the built .d.ts files, and are compiled with the strictest settings
 * (strict, exactOptionalPropertyTypes, noUncheckedIndexedAccess, skipLibCheck off, so the
 * .d.ts files themselves are checked too). Their `@ts-expect-error` lines and `Leaked` checks
 * fail the compile if a member marked internal becomes visible. Needs `npm run build` first
 * (`npm test` runs it).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = join(root, 'test', 'types', 'fixtures');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const run = promisify(execFile);
const T = { timeout: 120_000 };

interface PackageJson {
  exports: Record<string, string | { types?: string }>;
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PackageJson;

/** The .d.ts file of every entry point in package.json "exports", by subpath ('.', './client', ...). */
function entryTypes(): Map<string, string> {
  const entries = new Map<string, string>();
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'object' && target.types !== undefined) entries.set(subpath, join(root, target.types));
  }
  return entries;
}

/** Fail (not skip) when dist/ is missing: this test is about what the build produces. */
function requireBuild(): void {
  const missing = [...entryTypes().values()].filter((file) => !existsSync(file)).map((file) => relative(root, file));
  assert.deepEqual(missing, [], `the built .d.ts files are missing (${missing.join(', ')}): run npm run build first`);
}

function declarationFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...declarationFiles(path));
    else if (entry.name.endsWith('.d.ts')) found.push(path);
  }
  return found;
}

/** Compile one fixture project as a user would (`tsc -p`); returns tsc's exit code and output. */
async function compile(project: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [tsc, '-p', join(fixtures, project, 'tsconfig.json'), '--pretty', 'false'],
      { cwd: root, maxBuffer: 16 << 20 },
    );
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      output: `${e.stdout ?? ''}${e.stderr ?? ''}` || String(err),
    };
  }
}

let compiles: Map<string, Promise<{ code: number; output: string }>> | undefined;

/** The result of compiling `project`; the first call starts both compiles at once (seconds each). */
function compiled(project: string): Promise<{ code: number; output: string }> {
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

  it('every entry point in package.json "exports" is used by a fixture', () => {
    const sources = ['node', 'browser']
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
