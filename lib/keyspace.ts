// Every name ferry gives a Redis key, channel, queue or job, in one place. A cluster's keys all
// start with `ferry-<cluster>`, so two clusters (the demo's and the tests') never see each other's.

const base = (cluster: string): string => `ferry-${cluster}`;

export const keyspace = {
  /** BullMQ's prefix for the cluster's queues. */
  queuePrefix: base,
  /** The queue an agent works: one per node. */
  agentQueue: (node: string): string => `agent-${node}`,
  /** A step's job id: deterministic, so the same step of a migration is never enqueued twice. */
  jobId: (uid: string, step: string): string => `${uid}.${step}`,

  /** The node registry: one key per node, refreshed by its agent's heartbeat, with an expiry. */
  node: (cluster: string, node: string): string => `${base(cluster)}:node:${node}`,
  /** Every node whose agent ever beat, and when it last did: a hash that outlives the expiry. */
  nodesSeen: (cluster: string): string => `${base(cluster)}:nodes-seen`,
  /** Marks of running migrations (lib/live-migrations.ts). */
  live: (cluster: string, uid: string): string => `${base(cluster)}:live:${uid}`,
  /** How a migration ended, kept a week for nodes that return late (lib/live-migrations.ts). */
  ended: (cluster: string, uid: string): string => `${base(cluster)}:ended:${uid}`,
  /** Nodes an operator declared dead (lib/fences.ts). */
  fence: (cluster: string, node: string): string => `${base(cluster)}:fence:${node}`,
  /** A source's questions to a target about migrations the store forgot, and the answers (lib/handover.ts). */
  asks: (cluster: string, node: string): string => `${base(cluster)}:asks:${node}`,
  verdict: (cluster: string, uid: string): string => `${base(cluster)}:verdict:${uid}`,

  /** The local store: Migration documents, their status, events, and a change channel. */
  migrations: (cluster: string): string => `${base(cluster)}:migrations`,
  migrationStatus: (cluster: string): string => `${base(cluster)}:migrations:status`,
  /** Each Migration's revision, raised by every write of it: a list fetches only what changed. */
  migrationRevisions: (cluster: string): string => `${base(cluster)}:migrations:revisions`,
  eventsPrefix: (cluster: string): string => `${base(cluster)}:events:`,
  migrationsChanged: (cluster: string): string => `${base(cluster)}:migrations:changed`,

  /** Each running controller's version (lib/version.ts), by host/pid. */
  controllers: (cluster: string): string => `${base(cluster)}:controllers`,

  /** The controller's leader lease on the local cluster. */
  leader: (cluster: string): string => `${base(cluster)}:leader`,

  /** Test clusters' fault hooks: an agent's armed points, their releases, the controller's. */
  agentHooks: (cluster: string, node: string): string => `${base(cluster)}:hooks:${node}`,
  hookRelease: (cluster: string, name: string): string => `${base(cluster)}:release:${name}`,
  controllerHooks: (cluster: string): string => `${base(cluster)}:hooks:controller`,
} as const;
