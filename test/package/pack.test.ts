/**
 * What `npm pack` would publish (`npm pack --dry-run --json --ignore-scripts`, so nothing is
 * built or changed): every source map and every `sourceMappingURL` points at a file that is in
 * the package (the maps' sources are src/, which ships), nothing only the repository needs
 * (tests, benchmarks and their results, the demo's sources, the README's screenshot), no
 * file over a size bound, and no relative link in its Markdown to a file it lacks. Needs
 * `npm run build` (dist/) first; takes a second or two.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The largest file allowed: the demo's bundle (Vue included) is the largest wanted one, about
 * 100 KB. A file past this is most likely something that should not ship.
 */
const MAX_FILE_BYTES = 192 * 1024;

/** Paths the package must not contain (the repository's own material). */
const REPO_ONLY = [
  /^test\//,
  /^bench\//,
  /^scripts\//,
  /^demo\//,
  /^coverage\//,
  /^node_modules\//,
  /^\.ci\//,
  /^docs\/.*\.json$/,
  /\.png$/,
  /\.tgz$/,
  /\.test\.[cm]?[jt]s$/,
];

interface PackedFile {
  path: string;
  size: number;
}

async function packList(): Promise<{ files: PackedFile[]; size: number; unpackedSize: number }> {
  // Under `npm test`, npm says where it is; run on its own, the npm on PATH.
  const npm = process.env.npm_execpath;
  const [command, prefix] = npm?.endsWith('.js') ? [process.execPath, [npm]] : ['npm', []];
  const { stdout } = await promisify(execFile)(
    command,
    [...prefix, 'pack', '--dry-run', '--json', '--ignore-scripts'],
    {
      cwd: ROOT,
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  const [result] = JSON.parse(stdout) as Array<{ files: PackedFile[]; size: number; unpackedSize: number }>;
  return result;
}

test(
  'the npm package: source maps resolve inside it, no repository-only files, no oversized file, no dangling Markdown link',
  { timeout: 120_000 },
  async () => {
    const { files, size, unpackedSize } = await packList();
    const paths = new Set(files.map((f) => f.path));
    console.log(`# npm pack: ${files.length} files, ${size} bytes packed, ${unpackedSize} unpacked`);
    assert.ok(
      paths.has('package.json') && paths.has('dist/index.js') && paths.has('dist/cli/duet.js'),
      'dist/ is built',
    );

    const dangling: string[] = [];
    let maps = 0;
    for (const file of files) {
      if (file.path.endsWith('.map')) {
        maps++;
        const map = JSON.parse(readFileSync(join(ROOT, file.path), 'utf8')) as {
          sources: string[];
          sourceRoot?: string;
        };
        for (const source of map.sources) {
          const target = posix.normalize(posix.join(posix.dirname(file.path), map.sourceRoot ?? '', source));
          if (!paths.has(target)) dangling.push(`${file.path} -> ${target}`);
        }
      } else if (/\.[cm]?js$/.test(file.path)) {
        const text = readFileSync(join(ROOT, file.path), 'utf8');
        const link = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text)?.[1];
        if (link !== undefined && !link.startsWith('data:')) {
          const target = posix.normalize(posix.join(posix.dirname(file.path), link));
          if (!paths.has(target)) dangling.push(`${file.path} -> ${target}`);
        }
      }
    }
    assert.ok(maps > 0, 'the maps are there to check (tsc emits them next to dist/)');
    assert.deepEqual(dangling, [], 'source maps and sourceMappingURL comments pointing at files the package lacks');

    const repoOnly = [...paths].filter((p) => REPO_ONLY.some((re) => re.test(p)));
    assert.deepEqual(repoOnly, [], 'files only the repository needs');

    const big = files.filter((f) => f.size > MAX_FILE_BYTES).map((f) => `${f.path} (${f.size} bytes)`);
    assert.deepEqual(big, [], `files over ${MAX_FILE_BYTES} bytes`);

    // Every file the package.json points at is in it.
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      main: string;
      types: string;
      bin: Record<string, string>;
    };
    for (const entry of [pkg.main, pkg.types, ...Object.values(pkg.bin)]) {
      assert.ok(paths.has(posix.normalize(entry)), `${entry} is in the package`);
    }

    // Every relative link in the package's Markdown points at a file it contains, so that the
    // README and docs read from node_modules/duet lead somewhere; or at the repository's own
    // material (REPO_ONLY: the benchmarks' sources and results, the README's screenshot), left
    // out on purpose, which must then exist in the repository.
    const broken: string[] = [];
    let links = 0;
    let repoLinks = 0;
    for (const file of files.filter((f) => f.path.endsWith('.md'))) {
      const text = readFileSync(join(ROOT, file.path), 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const m of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const link = m[1].split('#')[0];
        if (link === '' || /^[a-z][a-z0-9+.-]*:/i.test(link)) continue;
        links++;
        const target = posix.normalize(posix.join(posix.dirname(file.path), decodeURI(link)));
        if (paths.has(target) || [...paths].some((p) => p.startsWith(`${target.replace(/\/$/, '')}/`))) continue;
        if (REPO_ONLY.some((re) => re.test(target)) && existsSync(join(ROOT, target))) repoLinks++;
        else broken.push(`${file.path} -> ${link}`);
      }
    }
    console.log(`# Markdown: ${links} relative links, ${repoLinks} of them to repository-only material`);
    assert.ok(links > 20, `the Markdown's relative links are there to check (${links})`);
    assert.deepEqual(broken, [], 'relative links in the packed Markdown to files the package lacks');
  },
);
