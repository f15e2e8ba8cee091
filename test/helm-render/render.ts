// Builds test/helm-render/main.go (a stand-in for `helm template`; see its first lines) with
// Debian's Go and the sprig and yaml packages scripts/setup.sh --test installs, then renders the
// chart with it. The build is cached under the system's temporary folder by the source's hash.
import { createHash } from 'node:crypto';
import { access, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exec } from '../../lib/exec.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
export const CHART_DIR = path.resolve(here, '../../charts/ferry');
/** Where Debian's golang-*-dev packages put their sources (GOPATH layout). */
const DEBIAN_GOPATH = '/usr/share/gocode';

async function renderer(): Promise<string> {
  const source = await readFile(path.join(here, 'main.go'));
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 12);
  const binary = path.join(os.tmpdir(), `ferry-helm-render-${hash}`);
  if (
    await access(binary).then(
      () => true,
      () => false,
    )
  )
    return binary;
  // GOPATH mode: Debian's packages import sprig's /v3 dependencies through Go's minimal module
  // compatibility, which only works for code that itself sits in a GOPATH.
  const gopath = await mkdtemp(path.join(os.tmpdir(), 'ferry-gopath-'));
  try {
    const pkg = path.join(gopath, 'src', 'helmrender');
    await mkdir(pkg, { recursive: true });
    await copyFile(path.join(here, 'main.go'), path.join(pkg, 'main.go'));
    const r = await exec('go', ['build', '-o', `${binary}.new`, '.'], {
      cwd: pkg,
      env: {
        ...process.env,
        GO111MODULE: 'off',
        GOPATH: `${gopath}:${DEBIAN_GOPATH}`,
        GOCACHE: path.join(gopath, 'cache'),
        GOFLAGS: '',
      },
    });
    if (r.code !== 0) throw new Error(`building the chart renderer failed: ${r.stderr.trim()}`);
    await exec('mv', [`${binary}.new`, binary]);
    return binary;
  } finally {
    await rm(gopath, { recursive: true, force: true });
  }
}

export interface RenderOptions {
  values: unknown;
  release?: string;
  namespace?: string;
  /** Objects `lookup` finds, as on an upgrade; none: an install. */
  existing?: unknown[];
}

/** Renders the chart; resolves to template path -> text, or rejects with the renderer's error. */
export async function renderChart(opts: RenderOptions): Promise<Record<string, string>> {
  const bin = await renderer();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-render-'));
  try {
    const values = path.join(dir, 'values.json');
    await writeFile(values, JSON.stringify(opts.values));
    const args = [CHART_DIR, values, opts.release ?? 'ferry', opts.namespace ?? 'ferry-system'];
    if (opts.existing) {
      await writeFile(path.join(dir, 'existing.json'), JSON.stringify(opts.existing));
      args.push(path.join(dir, 'existing.json'));
    }
    const r = await exec(bin, args);
    if (r.code !== 0) throw new Error(r.stderr.trim());
    return JSON.parse(r.stdout) as Record<string, string>;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Helm's values merge: maps merge key by key, anything else (lists included) is replaced. */
export function mergeValues(base: unknown, over: unknown): unknown {
  if (!isMap(base) || !isMap(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = mergeValues(base[k], v);
  return out;
}

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
