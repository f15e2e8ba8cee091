// ferry as plain JavaScript for a machine that has node and nothing else of ferry's: the command
// line, the agent, the controller and the GPU check's own programs bundled by esbuild into OUT/dist, so they
// run without node_modules or tsx (the GPU check carries them, test/gpu/pack.sh). Each entry point
// is OUT/dist/NAME.mjs; cluster/processes.ts starts the agents and the controller from there when
// it runs bundled. Usage: node --import tsx scripts/bundle.ts OUT
import { build } from 'esbuild';
import { chmod, copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** The bundle's entry points: the name each gets in OUT/dist, and its source. */
export const BUNDLE_ENTRIES = {
  ferry: 'cli/main.ts',
  agent: 'agent/main.ts',
  controller: 'controller/main.ts',
  'gpu-bench': 'bench/gpu.ts',
  'gpu-rollback': 'test/gpu/rollback.ts',
} as const;

export async function bundle(out: string): Promise<void> {
  const root = path.join(import.meta.dirname, '..');
  const dist = path.join(out, 'dist');
  await rm(dist, { recursive: true, force: true });
  await build({
    absWorkingDir: root,
    entryPoints: BUNDLE_ENTRIES,
    outdir: dist,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // Not minified: a stack trace on the GPU machine should name ferry's own functions.
    // ssh2's and cpu-features' native parts are optional: without them ssh2 uses node's crypto.
    external: ['*.node'],
    // CommonJS dependencies use require, __dirname and __filename; an ES module has none of its own.
    banner: {
      js: [
        "import { createRequire as __ferryRequire } from 'node:module';",
        "import { fileURLToPath as __ferryPath } from 'node:url';",
        'const require = __ferryRequire(import.meta.url);',
        'const __filename = __ferryPath(import.meta.url);',
        "const __dirname = __filename.replace(/\\/[^/]*$/, '');",
      ].join(' '),
    },
    logLevel: 'warning',
  });
  // What the code reads beside itself at run time (import.meta.url): the dashboard page, and the
  // version from package.json one folder up.
  await mkdir(path.join(dist, 'dashboard'), { recursive: true });
  await copyFile(path.join(root, 'controller/dashboard/page.html'), path.join(dist, 'dashboard/page.html'));
  await copyFile(path.join(root, 'package.json'), path.join(out, 'package.json'));
  await mkdir(path.join(out, 'bin'), { recursive: true });
  const cmd = path.join(out, 'bin/ferry');
  await writeFile(
    cmd,
    '#!/bin/sh\n# ferry bundled (scripts/bundle.ts): node and this folder are all it needs.\n' +
      'exec node "$(dirname "$(readlink -f "$0")")/../dist/ferry.mjs" "$@"\n',
  );
  await chmod(cmd, 0o755);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: node --import tsx scripts/bundle.ts OUT');
    process.exit(2);
  }
  await bundle(path.resolve(out));
}
