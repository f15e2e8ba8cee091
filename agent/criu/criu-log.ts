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

/** The last line CRIU wrote, without its timestamp: where it was when it stopped. */
export function lastLine(log: string): string | undefined {
  const lines = log.split('\n').filter((l) => l.trim());
  return lines
    .at(-1)
    ?.replace(/^\(\s*[\d.]+\)\s*/, '')
    .trim();
}

/**
 * Why a CRIU run failed, for people: CRIU's own error lines when it wrote some; when it wrote none,
 * that it died mid-way (killed, or out of memory: runc then only says its socket closed, "read
 * unixpacket ...: EOF") and the last thing it logged; else the runner's first line. Pure.
 */
export function criuFailure(log: string, runnerMessage: string, what: string): string {
  const lines = criuErrorLines(log);
  if (lines.length) return `CRIU says: ${lines.join(' | ')}`;
  const died = /unixpacket|EOF|signal: killed|exit status 137|terminated/i.test(runnerMessage);
  const last = lastLine(log);
  if (died)
    return `CRIU died during the ${what} without an error of its own (killed, or out of memory)${last ? `; its last words: "${last}"` : ''}`;
  return runnerMessage || `the ${what} failed`;
}
