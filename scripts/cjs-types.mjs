#!/usr/bin/env node
/**
 * Writes the declaration files CommonJS code compiles against (`require('duet')`,
 * `import WebSocket = require('duet')`), run by `npm run build` after tsc.
 *
 * There is one implementation, the ES modules in dist/: Node 20.19+ and 22.12+ load them with
 * require(), and `require('duet')` returns the WebSocket class (index.ts exports it as
 * 'module.exports'), as `require('ws')` does. TypeScript needs CommonJS-shaped declarations
 * for that: a CommonJS file compiled with `module: node16` (and with TypeScript before 5.8,
 * any `module` setting) may not import an ES module's .d.ts. So for every entry point whose
 * package.json "exports" have a `require` condition, this writes its `.d.cts`: the ES
 * module's exports, reached by a type-only import (`resolution-mode: import`, so no
 * `require` of ES module types is ever written), as an `export =` of a value and a namespace
 * of the same name. The types are the ES modules' own (aliases, not copies): a class is the
 * same class in an ES module and in a CommonJS file of one program.
 *
 * A generic type needs its type parameters written out; those known are in GENERICS below,
 * and an unknown one fails the build with its name.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import ts from 'typescript';

const root = join(dirname(new URL(import.meta.url).pathname), '..');

/**
 * Type parameters of the generic types among the exports, keyed by the exported name (a
 * member of the `WebSocket` namespace as `WebSocket.Name`): the declaration, then the
 * arguments. `M.` stands for the ES module's namespace.
 */
const CONNECTION_CLASS = ['T extends typeof M.WebSocket = typeof M.WebSocket', 'T'];
const GENERICS = {
  ServerEvents: ['W extends M.WebSocket = M.WebSocket', 'W'],
  ServerOptions: CONNECTION_CLASS,
  WebSocketServer: CONNECTION_CLASS,
  'WebSocket.ServerOptions': CONNECTION_CLASS,
  'WebSocket.Server': CONNECTION_CLASS,
  'WebSocket.WebSocketServer': CONNECTION_CLASS,
  WsEventListener: ['E = M.WsEvent', 'E'],
  ErrorFor: ['C extends M.DuetErrorCode', 'C'],
  VerifyClientCallbackSync: [
    "Request extends import('node:http').IncomingMessage = import('node:http').IncomingMessage",
    'Request',
  ],
  VerifyClientCallbackAsync: [
    "Request extends import('node:http').IncomingMessage = import('node:http').IncomingMessage",
    'Request',
  ],
};

const TYPE_MEANING = ts.SymbolFlags.Type;

/** The entry points with a `require` condition: [specifier, ES module .d.ts, CommonJS .d.cts]. */
function entries() {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const found = [];
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (typeof target !== 'object' || typeof target.require?.types !== 'string') continue;
    const spec = subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`;
    found.push([spec, join(root, target.import.types), join(root, target.require.types)]);
  }
  return found;
}

/** `type Name<P> = Target<A>;` for an exported type (`path` names it in GENERICS). */
function alias(name, path, symbol, target) {
  const declaration = symbol.declarations?.find((d) => d.typeParameters !== undefined);
  if (declaration === undefined) return `type ${name} = ${target};`;
  const generic = GENERICS[path];
  if (generic === undefined) {
    throw new Error(`${path} is generic: add its type parameters to GENERICS in scripts/cjs-types.mjs`);
  }
  return `type ${name}<${generic[0].replaceAll('M.', '$')}> = ${target}<${generic[1]}>;`;
}

function resolved(checker, symbol) {
  return symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
}

/**
 * The .d.cts of one entry point. The ES module's exports are imported by name, each as `$Name`
 * (not `import type * as M`: in a CommonJS file TypeScript 5.9 resolves such a namespace import
 * of a module with a 'module.exports' export to that export, as require() does).
 */
function declarations(spec, esm, cjs, checker, program) {
  const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(esm));
  const byName = new Map(checker.getExportsOfModule(moduleSymbol).map((s) => [s.name, s]));
  const from = `'./${relative(dirname(cjs), esm).replace(/\.d\.ts$/, '.js')}'`;
  const attributes = "{ 'resolution-mode': 'import' }";
  // What require() returns: the module's 'module.exports' export if it has one (the class,
  // under its exported name), else the module's namespace object.
  const moduleExports = byName.get('module.exports');
  const valueName = moduleExports
    ? [...byName.keys()].find(
        (n) =>
          n !== 'module.exports' &&
          n !== 'default' &&
          resolved(checker, byName.get(n)) === resolved(checker, moduleExports),
      )
    : spec.split('/').pop().replace(/\W/g, '_');
  const imported = moduleExports ? [valueName] : [];
  const members = [];
  for (const [name, symbol] of byName) {
    if (name === 'module.exports' || name === 'default') continue;
    const target = resolved(checker, symbol);
    if (!(target.flags & TYPE_MEANING)) continue;
    if (!imported.includes(name)) imported.push(name);
    members.push(alias(name, name, target, `$${name}`));
  }
  // ws's type names, declared on the class (WebSocket.Data, ...), that are not already there.
  for (const member of moduleExports ? (resolved(checker, moduleExports).exports?.values() ?? []) : []) {
    if (byName.has(member.name) || !(member.flags & TYPE_MEANING)) continue;
    members.push(alias(member.name, `${valueName}.${member.name}`, member, `$${valueName}.${member.name}`));
  }
  // Names the type parameters of GENERICS refer to.
  for (const [, name] of members.join('\n').matchAll(/\$(\w+)/g)) if (!imported.includes(name)) imported.push(name);
  const value = moduleExports ? `typeof $${valueName}` : `typeof import(${from}, { with: ${attributes} })`;
  return [
    `// Generated by scripts/cjs-types.mjs (npm run build): the types of require('${spec}'), which`,
    moduleExports
      ? `// returns the ${valueName} class, as require('ws') does; the types are ${basename(esm)}'s.`
      : `// returns the module's exports; the types are ${basename(esm)}'s.`,
    imported.length > 0
      ? `import type {\n${imported.map((n) => `  ${n} as $${n},\n`).join('')}} from ${from} with ${attributes};`
      : '',
    `declare const ${valueName}: ${value};`,
    moduleExports ? `type ${valueName} = $${valueName};` : '',
    `declare namespace ${valueName} {`,
    ...members.map((line) => `  ${line}`),
    `}`,
    `export = ${valueName};`,
    '',
  ]
    .filter((line, i, all) => line !== '' || i === all.length - 1)
    .join('\n');
}

const list = entries();
const program = ts.createProgram(
  list.map(([, esm]) => esm),
  {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: ['node'],
    noEmit: true,
  },
);
const checker = program.getTypeChecker();
for (const [spec, esm, cjs] of list) {
  writeFileSync(cjs, declarations(spec, esm, cjs, checker, program));
}
