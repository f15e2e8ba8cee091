// Reads CRIU's own log so a failure says why, the way go-criu quotes CRIU's error lines. Pure.

/** The first few "Error" lines of a CRIU log, with CRIU's harmless rlimit complaint left out. */
export function criuErrorLines(log: string, max = 3): string[] {
  return log
    .split('\n')
    .filter((l) => /\bError\b/.test(l))
    .filter((l) => !/Can't setup RLIMIT_NOFILE for self/.test(l))
    .map((l) => l.replace(/^\(\s*[\d.]+\)\s*/, '').trim())
    .slice(0, max);
}
