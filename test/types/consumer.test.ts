/**
 * The published types, as a user's compiler sees them. Small applications in
 * test/types/fixtures import the package by name, resolved through package.json "exports" to
 * the built .d.ts / .d.cts files, and are compiled with the strictest settings (strict,
 * exactOptionalPropertyTypes, noUncheckedIndexedAccess, skipLibCheck off, so the declaration
 * files themselves are checked too):
 * - node/: an ES module application (duet, duet/protocol, duet/client, duet/redis);
 * - browser/: duet/client and duet/vue with the DOM library and no Node types;
 * - cjs/: a CommonJS package (`import WebSocket = require('duet')`), with `module` node16 and
 *   nodenext, against the .d.cts files of the `require` condition;
 * - ws-code/: an application written for ws and @types/ws, compiled once against ws (it is
 *   ws code) and once with duet installed as `ws`, as npm `overrides` puts it there.
 * The last two are copied into a temporary project whose node_modules links to this
 * repository, as an installed package would be. The `@ts-expect-error` lines and `Leaked`
 * checks fail the compile if a member marked internal becomes visible. Needs `npm run build`
 * first (`npm test` runs it).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = join(root, 'test', 'types', 'fixtures');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const run = promisify(execFile);
// Generous: six compiles of a few seconds of CPU each, two at a time, on a possibly busy machine.
const T = { timeout: 300_000 };

interface Condition {
  types: string;
  default: string;
}
interface PackageJson {
  exports: Record<string, string | { import: Condition; require: Condition }>;
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PackageJson;

/**
 * The declaration files of every entry point in package.json "exports", by subpath ('.',
 * './client', ...): the ES module's .d.ts (`import`) and the CommonJS .d.cts (`require`).
 */
function entryTypes(): Map<string, { import: string; require: string }> {
  const entries = new Map<string, { import: string; require: string }>();
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'object') {
      entries.set(subpath, { import: join(root, target.import.types), require: join(root, target.require.types) });
    }
  }
  return entries;
}

/** Fail (not skip) when dist/ is missing: this test is about what the build produces. */
function requireBuild(): void {
  const missing = [...entryTypes().values()]
    .flatMap((files) => [files.import, files.require])
    .filter((file) => !existsSync(file))
    .map((file) => relative(root, file));
  assert.deepEqual(missing, [], `the built declaration files are missing (${missing.join(', ')}): run npm run build`);
}

function declarationFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...declarationFiles(path));
    else if (entry.name.endsWith('.d.ts') || entry.name.endsWith('.d.cts')) found.push(path);
  }
  return found;
}

/** Run tsc with `args`; returns its exit code and output. */
async function tscRun(args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [tsc, ...args, '--pretty', 'false'], {
      cwd: root,
      maxBuffer: 16 << 20,
    });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      output: `${e.stdout ?? ''}${e.stderr ?? ''}` || String(err),
    };
  }
}

/** Compile one fixture project in place as a user would (`tsc -p`). */
function compile(project: string): Promise<{ code: number; output: string }> {
  return tscRun(['-p', join(fixtures, project, 'tsconfig.json')]);
}

/**
 * Compile fixture `project` as a package of its own: its files are copied to a temporary
 * directory whose node_modules has `links` (name -> directory: `duet` -> this repository,
 * `ws` -> ws or duet) and the @types of this repository, and compiled with `module` and
 * `moduleResolution` set to `module` (node16, nodenext). ES syntax in a CommonJS file is
 * allowed (verbatimModuleSyntax off, esModuleInterop on), as most CommonJS TypeScript
 * projects compile.
 */
async function compileAsPackage(
  project: string,
  module: 'node16' | 'nodenext',
  links: Record<string, string>,
): Promise<{ code: number; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), `duet-types-${project}-`));
  try {
    cpSync(join(fixtures, project), dir, { recursive: true });
    mkdirSync(join(dir, 'node_modules'));
    for (const [name, target] of Object.entries({ ...links, '@types': join(root, 'node_modules', '@types') })) {
      symlinkSync(target, join(dir, 'node_modules', name), 'dir');
    }
    const files = readdirSync(dir).filter((name) => /\.[mc]?ts$/.test(name));
    const tsconfig = {
      extends: join(fixtures, 'tsconfig.base.json'),
      compilerOptions: {
        module,
        moduleResolution: module,
        verbatimModuleSyntax: false,
        esModuleInterop: true,
        lib: ['ES2022'],
        types: ['node'],
      },
      files,
    };
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
    return await tscRun(['-p', join(dir, 'tsconfig.json')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let compiles: Map<string, Promise<{ code: number; output: string }>> | undefined;

/**
 * The result of compiling fixture `name`. The first call queues every compile (seconds of CPU
 * each), two at a time: on a busy machine more at once only makes each one slower, and a test
 * waits for its own.
 */
function compiled(name: string): Promise<{ code: number; output: string }> {
  requireBuild();
  if (compiles === undefined) {
    const ws = join(root, 'node_modules', 'ws');
    const jobs: Array<[string, () => Promise<{ code: number; output: string }>]> = [
      ['node', () => compile('node')],
      ['browser', () => compile('browser')],
      ['cjs node16', () => compileAsPackage('cjs', 'node16', { duet: root })],
      ['cjs nodenext', () => compileAsPackage('cjs', 'nodenext', { duet: root })],
      ['ws-code on ws', () => compileAsPackage('ws-code', 'nodenext', { ws })],
      ['ws-code on duet', () => compileAsPackage('ws-code', 'nodenext', { ws: root })],
    ];
    const lanes = [Promise.resolve(), Promise.resolve()];
    compiles = new Map(
      jobs.map(([jobName, job], i) => {
        const result = lanes[i % 2].then(job);
        lanes[i % 2] = result.then(() => undefined);
        return [jobName, result];
      }),
    );
  }
  const result = compiles.get(name);
  assert.ok(result, `no fixture compile named ${name}`);
  return result;
}

/**
 * Exported names of a declaration file as a user's TypeScript sees them, with whether each
 * names a type and a value. For a CommonJS `export =`, the names are the members of the
 * namespace (types) and the properties of the value.
 */
function exportsOf(file: string): Map<string, { type: boolean; value: boolean }> {
  const program = ts.createProgram([file], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: ['node'],
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(file)!);
  assert.ok(moduleSymbol?.exports, `${file} is not a module`);
  const resolve = (symbol: ts.Symbol): ts.Symbol =>
    symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
  const names = new Map<string, { type: boolean; value: boolean }>();
  const add = (name: string, type: boolean, value: boolean): void => {
    const seen = names.get(name);
    names.set(name, { type: type || (seen?.type ?? false), value: value || (seen?.value ?? false) });
  };
  const exportEquals = moduleSymbol.exports.get(ts.InternalSymbolName.ExportEquals);
  /** Whether `symbol` is exported type-only somewhere along its chain of re-exports (`export type { X }`). */
  const typeOnly = (symbol: ts.Symbol): boolean => {
    for (let s: ts.Symbol | undefined = symbol; s && s.flags & ts.SymbolFlags.Alias;) {
      const declaration = s.declarations?.find(ts.isExportSpecifier);
      if (declaration && (declaration.isTypeOnly || declaration.parent.parent.isTypeOnly)) return true;
      s = checker.getImmediateAliasedSymbol(s);
    }
    return false;
  };
  if (exportEquals === undefined) {
    for (const symbol of checker.getExportsOfModule(moduleSymbol)) {
      const target = resolve(symbol);
      const value = (target.flags & ts.SymbolFlags.Value) !== 0 && !typeOnly(symbol);
      add(symbol.name, (target.flags & ts.SymbolFlags.Type) !== 0, value);
    }
    return names;
  }
  const target = resolve(exportEquals);
  target.exports?.forEach((member, name) => add(String(name), (member.flags & ts.SymbolFlags.Type) !== 0, false));
  for (const property of checker.getPropertiesOfType(checker.getTypeOfSymbol(target))) add(property.name, false, true);
  return names;
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

  for (const module of ['node16', 'nodenext']) {
    it(`compile with a strict CommonJS application (module ${module}): require('duet') is the class`, T, async () => {
      const { code, output } = await compiled(`cjs ${module}`);
      assert.equal(code, 0, `tsc on test/types/fixtures/cjs (module ${module}) failed:\n${output}`);
      assert.equal(output.trim(), '');
    });
  }

  it('compile code written for ws and @types/ws, unchanged, with duet installed as ws', T, async () => {
    // First with ws itself: the fixture is ws code (a line only duet accepts fails here).
    const onWs = await compiled('ws-code on ws');
    assert.equal(onWs.code, 0, `test/types/fixtures/ws-code does not compile against ws:\n${onWs.output}`);
    const { code, output } = await compiled('ws-code on duet');
    assert.equal(code, 0, `ws-code on duet failed:\n${output}`);
    assert.equal(output.trim(), '');
  });

  it('the .d.cts of every entry point has every export of its .d.ts, with the same meaning', () => {
    requireBuild();
    const missing: string[] = [];
    for (const [subpath, files] of entryTypes()) {
      const esm = exportsOf(files.import);
      const cjs = exportsOf(files.require);
      for (const [name, meaning] of esm) {
        if (name === 'default' || name === 'module.exports') continue;
        const found = cjs.get(name);
        if (!found || found.type !== meaning.type || found.value !== meaning.value) missing.push(`${subpath} ${name}`);
      }
    }
    assert.deepEqual(missing, []);
    // ws's names, declared on the class: in the .d.cts at the top level of require('duet').
    const root = exportsOf(entryTypes().get('.')!.require);
    for (const name of ['Data', 'Server', 'VerifyClientCallbackAsync', 'CloseEvent']) assert.ok(root.has(name), name);
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
