import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** The parts of V8's `.cpuprofile` (Chrome DevTools Profiler.Profile) the summary reads. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  name: string;
  ms: number;
  /** Of the busy (not idle) time. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Time the main thread waited for I/O or timers; the shares below are of the rest. */
  idleMs: number;
  /**
   * Time by the archiver's own directory (src/convert, src/store, …) that is on the stack, counting the dependencies
   * and native calls it made: the CPU side of "time per stage". Samples with no src/ frame on the stack (socket
   * reads in imapflow, GC) go by where they are.
   */
  components: HotSpot[];
  /** Self time by function. */
  functions: HotSpot[];
}

const REPO = path.resolve(import.meta.dirname, '../..');

/** A path relative to the repository, whether the code ran from it or from a build of it under `root`. */
function relative(url: string, root: string): string {
  const file = url.startsWith('file://') ? new URL(url).pathname : url;
  for (const base of [root, REPO]) if (file.startsWith(base + path.sep)) return path.relative(base, file);
  return file;
}

/** `src/convert/body.ts` → `src/convert`, a dependency → its package, `node:internal/fs/…` → `node:internal`. */
function areaOf(file: string, functionName: string): string {
  // Frames without a script are V8's own ((garbage collector), (program)) or C++ bindings (fs, crypto, zlib).
  if (!file) return functionName.startsWith('(') ? functionName : '(native bindings)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file)?.[1];
  if (pkg) return pkg;
  if (file.startsWith('node:')) return file.split('/')[0]!;
  return file.split('/').slice(0, 2).join('/');
}

function top(times: Map<string, number>, busyMs: number, n: number): HotSpot[] {
  return [...times]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, ms]) => ({ name, ms, share: ms / busyMs }));
}

function add(map: Map<string, number>, key: string, ms: number): void {
  map.set(key, (map.get(key) ?? 0) + ms);
}

/**
 * Time per component and self time per function, `n` of each, from a profile written by `node --cpu-prof` of code
 * that ran from `root` (the repository or a build of it).
 */
export async function summariseProfile(file: string, root: string, n = 15): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const files = new Map(profile.nodes.map((node) => [node.id, relative(node.callFrame.url, root)]));
  const ownComponent = new Map<number, string | undefined>();
  const componentOf = (id: number): string | undefined => {
    if (ownComponent.has(id)) return ownComponent.get(id);
    const here = files.get(id) ?? '';
    const parent = parents.get(id);
    const found = here.startsWith('src/') ? areaOf(here, '') : parent === undefined ? undefined : componentOf(parent);
    ownComponent.set(id, found);
    return found;
  };

  const components = new Map<string, number>();
  const functions = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  profile.samples.forEach((id, i) => {
    const frame = frames.get(id);
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    if (!frame) return;
    totalMs += ms;
    if (frame.functionName === '(idle)') {
      idleMs += ms;
      return;
    }
    const where = files.get(id) ?? '';
    add(components, componentOf(id) ?? areaOf(where, frame.functionName), ms);
    add(functions, `${frame.functionName || '(anonymous)'}${where ? ` (${where})` : ''}`, ms);
  });
  const busyMs = totalMs - idleMs;
  return {
    file: relative(file, root),
    totalMs,
    idleMs,
    components: top(components, busyMs, n),
    functions: top(functions, busyMs, n),
  };
}
