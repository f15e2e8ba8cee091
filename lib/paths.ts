// Where the local cluster keeps its files. One function per location so every part agrees.
import path from 'node:path';

export const FERRY_HOME = process.env.FERRY_HOME ?? '/var/lib/ferry';
export const FERRY_RUN = process.env.FERRY_RUN ?? '/run/ferry';
/** Installed by scripts/setup.sh: the CRIU wrapper and the workload binary. */
export const FERRY_OPT = process.env.FERRY_OPT ?? '/opt/ferry';

export const clusterDir = (cluster: string): string => path.join(FERRY_HOME, cluster);
export const clusterConfigFile = (cluster: string): string => path.join(clusterDir(cluster), 'cluster.json');
export const nodeDir = (cluster: string, node: string): string =>
  path.join(clusterDir(cluster), 'nodes', node);
export const nodeRunDir = (cluster: string, node: string): string => path.join(FERRY_RUN, cluster, node);

/** Files of one simulated node. */
export function nodePaths(cluster: string, node: string) {
  const dir = nodeDir(cluster, node);
  const run = nodeRunDir(cluster, node);
  return {
    dir,
    disk: path.join(dir, 'disk.img'),
    fsRoot: path.join(dir, 'fs'),
    imagesDir: path.join(run, 'images'),
    runcRoot: path.join(run, 'runc'),
    keyFile: path.join(dir, 'ssh_key'),
    configFile: path.join(dir, 'agent.json'),
    logFile: path.join(dir, 'agent.log'),
    pidFile: path.join(dir, 'agent.pid'),
  };
}

/** Where an agent keeps the CRIU logs of failed steps: not in the migration's folders, which go. */
export const keptLogsDir = (fsRoot: string): string => path.join(fsRoot, 'logs');

/** Layout inside a node's btrfs filesystem and image directory. */
export function fsLayout(fsRoot: string, imagesDir: string) {
  return {
    containers: path.join(fsRoot, 'containers'),
    bundle: (c: string) => path.join(fsRoot, 'containers', c),
    rootfs: (c: string) => path.join(fsRoot, 'containers', c, 'rootfs'),
    snapshots: path.join(fsRoot, 'snapshots'),
    /** base: the first running send; sync2: a second running round; final: taken while frozen. */
    snapshot: (uid: string, which: 'base' | 'sync2' | 'final') =>
      path.join(fsRoot, 'snapshots', `${uid}-${which}`),
    volumes: (c: string) => path.join(fsRoot, 'containers', c, 'volumes'),
    volume: (c: string, name: string) => path.join(fsRoot, 'containers', c, 'volumes', name),
    volumeSnapshot: (uid: string, name: string, which: 'base' | 'sync2' | 'final') =>
      path.join(fsRoot, 'snapshots', `${uid}-v-${name}-${which}`),
    incoming: (uid: string) => path.join(fsRoot, 'incoming', uid),
    images: (uid: string) => path.join(imagesDir, uid),
    checkpoint: (uid: string) => path.join(imagesDir, uid, 'checkpoint'),
    work: (uid: string) => path.join(imagesDir, uid, 'work'),
  };
}
