/**
 * Every JavaScript and TypeScript code block of README.md and docs/*.md type-checks as pasted
 * into a file of its own: each block is written to a module in a temporary folder whose
 * node_modules has `duet` (a link to this repository, so imports go through package.json's
 * `exports` to the built dist/, as a user's would) beside this repository's dependencies, and
 * TypeScript checks them under --strict (JavaScript with checkJs, without noImplicitAny), with the
 * DOM and Node's types both present (samples run in browsers and in Node). So a sample must
 * import what it uses and define its placeholders (`latestPrice()`, `reloadState()`, ...).
 *
 * Blocks: fences (``` or ~~~, indented or not) whose language is js, javascript, mjs, cjs, ts,
 * typescript, mts, cts, jsx, tsx, or vue (its `<script>` part). A block is left out only by
 * an HTML comment on the line just above its fence that gives a reason:
 * `<!-- not type-checked: REASON -->`. The test prints how many blocks of each file it
 * checked and which it left out. Needs `npm run build` (dist/) first.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
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
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Language of a fence -> extension of the file it is checked as. */
const EXTENSIONS: Readonly<Record<string, string>> = {
  js: '.mjs',
  javascript: '.mjs',
  mjs: '.mjs',
  jsx: '.jsx',
  cjs: '.cjs',
  ts: '.mts',
  typescript: '.mts',
  mts: '.mts',
  tsx: '.tsx',
  cts: '.cts',
  vue: '.mts',
};

const SKIP_MARKER = /^\s*<!--\s*not type-checked:(.*)-->\s*$/;

interface CodeBlock {
  /** The Markdown file, relative to the repository. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  language: string;
  code: string;
  /** The reason given by a `<!-- not type-checked: ... -->` marker, if any ('' when empty). */
  skipReason?: string;
}

/** The fenced code blocks of a Markdown text, every language. */
function codeBlocks(file: string, markdown: string): CodeBlock[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^\s`{]*)/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, info] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = /^\s*(`{3,}|~{3,})\s*$/.exec(lines[j]);
      if (close && close[1][0] === fence[0] && close[1].length >= fence.length) break;
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j].trimStart());
    }
    const marker = i > 0 ? SKIP_MARKER.exec(lines[i - 1]) : null;
    const block: CodeBlock = { file, line: i + 1, language: info.toLowerCase(), code: body.join('\n') };
    if (marker) block.skipReason = marker[1].trim();
    blocks.push(block);
    i = j;
  }
  return blocks;
}

/** The code to check for a block: a Vue component's `<script>` part, anything else as it is. */
function checkedSource(block: CodeBlock): string {
  if (block.language !== 'vue') return block.code;
  const script = /<script\b[^>]*>([\s\S]*?)<\/script>/.exec(block.code);
  if (!script) throw new Error(`${block.file}:${block.line}: a vue block without a <script> part`);
  // Keep the line numbers of the block in the file that is checked.
  const before = block.code.slice(0, script.index + script[0].indexOf('>') + 1);
  return '\n'.repeat(before.split('\n').length - 1) + script[1];
}

function markdownFiles(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...docs];
}

/**
 * A folder where `import ... from 'duet'` finds this repository and every other import this
 * repository's node_modules: links, nothing copied.
 */
function sandbox(): string {
  const dir = mkdtempSync(join(tmpdir(), 'duet-docs-'));
  const modules = join(dir, 'node_modules');
  mkdirSync(modules);
  for (const name of readdirSync(join(ROOT, 'node_modules'))) {
    if (name === 'duet' || name.startsWith('.')) continue;
    symlinkSync(join(ROOT, 'node_modules', name), join(modules, name));
  }
  symlinkSync(ROOT, join(modules, 'duet'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'docs-samples', private: true, type: 'module' }));
  return dir;
}

describe('the code blocks of README.md and docs/', () => {
  const dir = sandbox();
  after(() => rmSync(dir, { recursive: true, force: true }));

  const all = markdownFiles().flatMap((file) => codeBlocks(file, readFileSync(join(ROOT, file), 'utf8')));
  const code = all.filter((b) => Object.hasOwn(EXTENSIONS, b.language));

  it('finds the blocks (the extraction itself works)', () => {
    const sample = codeBlocks(
      'x.md',
      [
        '```js',
        'a();',
        '```',
        '  ~~~~ts title="x"',
        '  const b: number = 1;',
        '  ```',
        '  still inside',
        '  ~~~~',
        '<!-- not type-checked: a fragment -->',
        '```vue',
        '<template></template>',
        '```',
      ].join('\n'),
    );
    assert.deepEqual(
      sample.map((b) => [b.line, b.language, b.code, b.skipReason]),
      [
        [1, 'js', 'a();', undefined],
        [4, 'ts', 'const b: number = 1;\n```\nstill inside', undefined],
        [10, 'vue', '<template></template>', 'a fragment'],
      ],
    );
    assert.ok(code.length >= 30, `only ${code.length} JavaScript/TypeScript blocks found`);
  });

  it('a block is left out only with a reason', () => {
    const unexplained = code.filter((b) => b.skipReason === '').map((b) => `${b.file}:${b.line}`);
    assert.deepEqual(unexplained, [], 'a "not type-checked:" marker needs a reason after the colon');
  });

  // Loading the DOM's and Node's types takes a few seconds, more on a busy machine.
  it(
    'every other block type-checks as pasted (strict TypeScript; JavaScript with checkJs)',
    { timeout: 180_000 },
    () => {
      assert.ok(existsSync(join(ROOT, 'dist/index.d.ts')), 'dist/ is not built: run npm run build first');
      const byFile = new Map<string, CodeBlock>();
      const counts = new Map<string, { checked: number; skipped: string[] }>();
      for (const block of code) {
        const count = counts.get(block.file) ?? { checked: 0, skipped: [] };
        counts.set(block.file, count);
        if (block.skipReason !== undefined) {
          count.skipped.push(`line ${block.line} (${block.skipReason})`);
          continue;
        }
        count.checked++;
        const name = `${block.file.replace(/[/.]/g, '_')}_${block.line}${EXTENSIONS[block.language]}`;
        const path = join(dir, name);
        writeFileSync(path, checkedSource(block));
        byFile.set(path, block);
      }
      const options: ts.CompilerOptions = {
        strict: true,
        noEmit: true,
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        moduleDetection: ts.ModuleDetectionKind.Force,
        lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules/@types')],
        allowJs: true,
        checkJs: true,
        jsx: ts.JsxEmit.Preserve,
        skipLibCheck: true,
        esModuleInterop: true,
      };
      // JavaScript as users write it: strict, but no type annotations to demand (noImplicitAny
      // would want them wherever TypeScript cannot infer one, e.g. `ws.onmessage = (e) => ...`).
      const files = [...byFile.keys()];
      const isJs = (f: string): boolean => /\.(mjs|cjs|jsx)$/.test(f);
      // The two programs share their parsed files (the DOM's and Node's types are most of it).
      const host = ts.createCompilerHost(options);
      const parsed = new Map<string, ts.SourceFile | undefined>();
      const getSourceFile = host.getSourceFile.bind(host);
      host.getSourceFile = (fileName, languageVersion, ...rest) => {
        if (!parsed.has(fileName)) parsed.set(fileName, getSourceFile(fileName, languageVersion, ...rest));
        return parsed.get(fileName);
      };
      const tsFiles = files.filter((f) => !isJs(f));
      const jsFiles = files.filter(isJs);
      const diagnostics = [
        ...ts.getPreEmitDiagnostics(ts.createProgram(tsFiles, options, host)),
        ...ts.getPreEmitDiagnostics(ts.createProgram(jsFiles, { ...options, noImplicitAny: false }, host)),
      ];
      const problems: string[] = [];
      for (const diagnostic of diagnostics) {
        const source = diagnostic.file;
        const block = source ? byFile.get(source.fileName) : undefined;
        const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n  ');
        if (!source || !block) {
          problems.push(`${source ? relative(dir, source.fileName) : '(global)'}: TS${diagnostic.code} ${text}`);
          continue;
        }
        const { line } = source.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
        problems.push(`${block.file}:${block.line + 1 + line}: TS${diagnostic.code} ${text}`);
      }
      const summary = [...counts].map(
        ([file, c]) => `${file}: ${c.checked} checked${c.skipped.length ? `, left out: ${c.skipped.join('; ')}` : ''}`,
      );
      const skipped = [...counts.values()].reduce((n, c) => n + c.skipped.length, 0);
      console.log(`# ${byFile.size} code blocks type-checked, ${skipped} left out\n# ${summary.join('\n# ')}`);
      assert.deepEqual(problems, [], `samples that do not type-check as pasted:\n${problems.join('\n')}`);
    },
  );
});
