// Kubernetes label selectors: whether one selects a set of labels (as budgets and `ferry get -l`
// read them), and the text form kubectl takes on its command line. Pure.
import type { V1LabelSelector } from '@kubernetes/client-node';
import { FerryError } from '../errors.ts';

/**
 * Whether a label selector selects `labels`: every matchLabels pair and every matchExpression (In,
 * NotIn, Exists, DoesNotExist); an empty selector selects everything, an absent one nothing, as
 * policy/v1 budgets read them. Pure.
 */
export function selects(selector: V1LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  const pairs = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return (
    pairs &&
    (selector.matchExpressions ?? []).every((e) => {
      const has = Object.hasOwn(labels, e.key);
      switch (e.operator) {
        case 'In':
          return has && (e.values ?? []).includes(labels[e.key]!);
        case 'NotIn':
          return !has || !(e.values ?? []).includes(labels[e.key]!);
        case 'Exists':
          return has;
        case 'DoesNotExist':
          return !has;
        default:
          return false;
      }
    })
  );
}

/**
 * A selector as kubectl's -l writes it: `key=value` (or `==`), `key!=value`, `key` (exists) and
 * `!key` (does not), comma-separated. The set forms (`key in (a,b)`) are refused with the reason.
 */
export function parseSelector(text: string): V1LabelSelector {
  if (/[()]/.test(text))
    throw new FerryError(
      'InvalidInput',
      `-l ${JSON.stringify(text)}: set-based selectors (in, notin) are not supported; use key=value, key!=value, key or !key`,
    );
  const matchLabels: Record<string, string> = {};
  const matchExpressions: NonNullable<V1LabelSelector['matchExpressions']> = [];
  for (const part of text.split(',').map((p) => p.trim())) {
    const m = /^(!?)([A-Za-z0-9][-A-Za-z0-9_./]*)(?:\s*(==|=|!=)\s*([-A-Za-z0-9_.]*))?$/.exec(part);
    if (!m) throw new FerryError('InvalidInput', `-l: ${JSON.stringify(part)} is not a label requirement`);
    const [, not, key, op, value] = m;
    if (op && not)
      throw new FerryError('InvalidInput', `-l: ${JSON.stringify(part)} is not a label requirement`);
    if (op === '=' || op === '==') matchLabels[key!] = value!;
    else if (op === '!=') matchExpressions.push({ key: key!, operator: 'NotIn', values: [value!] });
    else matchExpressions.push({ key: key!, operator: not ? 'DoesNotExist' : 'Exists' });
  }
  return { matchLabels, matchExpressions };
}
