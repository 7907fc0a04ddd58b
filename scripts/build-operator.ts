// Builds what the image runs: src/main.ts and every module it imports as one ESM file, dist/main.mjs,
// the Trivy spawner's program as dist/trivy-spawner.mjs, the admission webhook's thread as dist/webhook-worker.mjs, with source maps and the licences of the bundled packages beside it.
//   npm run build            # writes dist/
//
// Why a bundle rather than tsc's one file per module plus node_modules: @kubernetes/client-node 2.x
// is ~1,900 modules, and Node keeps each module's whole source text and module record alive. Loading
// them one by one took 335 ms and 84 MiB of RSS; the bundle, whitespace and comments removed, loads
// in ~100 ms with ~50 MiB less RSS (bench/README.md#performance), and the image needs no node_modules.
// Names are kept (not mangled) so stack traces and logs stay readable without the map.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Metafile } from 'esbuild';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The files every build reads: a cache of builds keys on their content. */
export function buildInputs(): string[] {
  const sources = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return sources(full);
      return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [full] : [];
    });
  return [...sources(path.join(repoRoot, 'src')).sort(), path.join(repoRoot, 'package-lock.json'), fileURLToPath(import.meta.url)];
}

/** Bundles the operator into `outDir` (emptied first) and returns the path of its main.mjs. */
export async function buildOperator(outDir: string): Promise<string> {
  rmSync(outDir, { recursive: true, force: true });
  const mainJs = path.join(outDir, 'main.mjs');
  const result = await build({
    // The Trivy children are started by a helper process of their own (src/scanner/child-spawner.ts).
    // The admission webhook is served from a worker thread of its own (src/admission/admission-webhook.ts).
    entryPoints: {
      main: path.join(repoRoot, 'src/main.ts'),
      'trivy-spawner': path.join(repoRoot, 'src/scanner/trivy-spawner.ts'),
      'webhook-worker': path.join(repoRoot, 'src/admission/webhook-worker.ts'),
    },
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    absWorkingDir: repoRoot,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    minifyWhitespace: true,
    minifySyntax: true,
    // The licences go to THIRD-PARTY-LICENSES.txt in full; the bundle stays ASCII, which V8 stores
    // at one byte per character (one non-ASCII comment doubled the source text's 4 MB).
    legalComments: 'none',
    charset: 'ascii',
    sourcemap: 'linked',
    sourcesContent: false,
    // The CommonJS packages inside (pino, prom-client, js-yaml...) call require() for Node's modules.
    banner: { js: "import { createRequire as __imagescanCreateRequire } from 'node:module'; const require = __imagescanCreateRequire(import.meta.url);" },
    metafile: true,
    logLevel: 'warning',
  });
  writeFileSync(path.join(outDir, 'THIRD-PARTY-LICENSES.txt'), thirdPartyLicenses(result.metafile));
  return mainJs;
}

/** The package folders (`node_modules/...`) the bundle took code from, each once. */
function bundledPackages(metafile: Metafile): string[] {
  const dirs = new Set<string>();
  for (const input of Object.keys(metafile.inputs)) {
    const match = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match?.[1] !== undefined) dirs.add(match[1]);
  }
  return [...dirs].sort();
}

function thirdPartyLicenses(metafile: Metafile): string {
  const blocks = bundledPackages(metafile).map((dir) => {
    const full = path.join(repoRoot, dir);
    const pkg = JSON.parse(readFileSync(path.join(full, 'package.json'), 'utf8')) as { name?: string; version?: string; license?: string };
    const licenceFile = readdirSync(full).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
    const text = licenceFile === undefined ? `(the package ships no licence file; package.json says: ${pkg.license ?? 'nothing'})` : readFileSync(path.join(full, licenceFile), 'utf8').trim();
    return `${pkg.name ?? dir}@${pkg.version ?? '?'} (${pkg.license ?? 'no licence field'})\n\n${text}\n`;
  });
  return `dist/main.mjs bundles the following packages.\n\n${blocks.join(`\n${'-'.repeat(72)}\n\n`)}`;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const mainJs = await buildOperator(path.join(repoRoot, 'dist'));
  process.stdout.write(`wrote ${path.relative(repoRoot, mainJs)}\n`);
}
