// Kubernetes-style durations ("90s", "1m30s", "1h") and byte quantities ("100Mi", "1G"), parsed to
// numbers, and a duration written back for people. Pure; used by the schemas so that bad values
// are refused with the field named.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export const DURATION_PATTERN = /^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/;
export const QUANTITY_PATTERN = /^([0-9]+(\.[0-9]+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$/;

/** Go's time.ParseDuration subset that metav1.Duration accepts in manifests (no µs/ns). */
export function parseDuration(text: string): number | undefined {
  if (!DURATION_PATTERN.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return total;
}

/** Milliseconds as a duration for people and kubectl's columns: 850ms, 1.93s. */
export const formatDuration = (ms: number): string =>
  ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(2)}s`;

const QUANTITY: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};

/** A resource.Quantity of bytes: a number with an optional decimal or binary suffix. */
export function parseQuantity(text: string): number | undefined {
  const m = QUANTITY_PATTERN.exec(text);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * QUANTITY[m[3] ?? '']!);
}
