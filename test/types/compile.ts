/**
 * What the type tests share (test/types/*.test.ts): the package's entry points and their
 * declaration files, and compiling a fixture under test/types/fixtures as a user's compiler
 * would, in place or as a package of its own in a temporary directory.
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
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const fixtures = join(root, 'test', 'types', 'fixtures');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const run = promisify(execFile);

/** What a compile gave: tsc's exit code and everything it printed. */
export interface Compiled {
  code: number;
  output: string;
}

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
export function entryTypes(): Map<string, { import: string; require: string }> {
  const entries = new Map<string, { import: string; require: string }>();
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'object') {
      entries.set(subpath, { import: join(root, target.import.types), require: join(root, target.require.types) });
    }
  }
  return entries;
}

/** Fail (not skip) when dist/ is missing: this test is about what the build produces. */
export function requireBuild(): void {
  const missing = [...entryTypes().values()]
    .flatMap((files) => [files.import, files.require])
    .filter((file) => !existsSync(file))
    .map((file) => relative(root, file));
  assert.deepEqual(missing, [], `the built declaration files are missing (${missing.join(', ')}): run npm run build`);
}

export function declarationFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...declarationFiles(path));
    else if (entry.name.endsWith('.d.ts') || entry.name.endsWith('.d.cts')) found.push(path);
  }
  return found;
}

/** Run tsc with `args`; returns its exit code and output. */
async function tscRun(args: string[]): Promise<Compiled> {
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
export function compile(project: string): Promise<Compiled> {
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
export async function compileAsPackage(
  project: string,
  module: 'node16' | 'nodenext',
  links: Record<string, string>,
): Promise<Compiled> {
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

/** An exported name: whether it names a type, and whether a value. */
export interface Meaning {
  type: boolean;
  value: boolean;
}

/**
 * The exported names of each declaration file in `files`, as a user's TypeScript sees them
 * (one program for all: each one loads @types/node). For a CommonJS `export =`, the names are
 * the members of the namespace (types) and the properties of the value.
 */
export function exportsOf(files: string[]): Map<string, Map<string, Meaning>> {
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: ['node'],
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const resolve = (symbol: ts.Symbol): ts.Symbol =>
    symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
  /** Whether `symbol` is exported type-only somewhere along its chain of re-exports (`export type { X }`). */
  const typeOnly = (symbol: ts.Symbol): boolean => {
    for (let s: ts.Symbol | undefined = symbol; s && s.flags & ts.SymbolFlags.Alias;) {
      const declaration = s.declarations?.find(ts.isExportSpecifier);
      if (declaration && (declaration.isTypeOnly || declaration.parent.parent.isTypeOnly)) return true;
      s = checker.getImmediateAliasedSymbol(s);
    }
    return false;
  };
  const result = new Map<string, Map<string, Meaning>>();
  for (const file of files) {
    const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(file)!);
    assert.ok(moduleSymbol?.exports, `${file} is not a module`);
    const names = new Map<string, Meaning>();
    const add = (name: string, type: boolean, value: boolean): void => {
      const seen = names.get(name);
      names.set(name, { type: type || (seen?.type ?? false), value: value || (seen?.value ?? false) });
    };
    const exportEquals = moduleSymbol.exports.get(ts.InternalSymbolName.ExportEquals);
    if (exportEquals === undefined) {
      for (const symbol of checker.getExportsOfModule(moduleSymbol)) {
        const target = resolve(symbol);
        const value = (target.flags & ts.SymbolFlags.Value) !== 0 && !typeOnly(symbol);
        add(symbol.name, (target.flags & ts.SymbolFlags.Type) !== 0, value);
      }
    } else {
      const target = resolve(exportEquals);
      target.exports?.forEach((member, name) => add(String(name), (member.flags & ts.SymbolFlags.Type) !== 0, false));
      for (const property of checker.getPropertiesOfType(checker.getTypeOfSymbol(target))) {
        add(property.name, false, true);
      }
    }
    result.set(file, names);
  }
  return result;
}
