// The admission webhook's HTTPS endpoint (the API server calls webhooks over TLS only):
// POST /mutate-pods with an AdmissionReview, answered from the Migrations in the store
// (kube/admission.ts decides). Every replica serves it, leader or not: the API server calls
// whichever the Service picks, and deciding needs only the store.
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { Logger } from '../lib/logger.ts';
import type { MigrationStore } from '../lib/store/migration-store.ts';
import { admissionResponse, type AdmissionReview } from './kube/admission.ts';

/** Reviews larger than any pod: refused unread. */
const MAX_BODY = 4 << 20;

export async function serveWebhook(
  store: MigrationStore,
  log: Logger,
  o: { port: number; host: string; certFile: string; keyFile: string },
): Promise<Server> {
  const tls = { cert: await readFile(o.certFile), key: await readFile(o.keyFile) };
  const server = createServer(tls, (req, res) => {
    const reply = (code: number, body: unknown) =>
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.method !== 'POST' || req.url?.split('?')[0] !== '/mutate-pods')
      return reply(404, { message: 'not found' });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
      if (body.length > MAX_BODY) req.destroy();
    });
    req.on('end', () => {
      let review: AdmissionReview;
      try {
        review = JSON.parse(body) as AdmissionReview;
      } catch {
        return reply(400, { message: 'not an AdmissionReview' });
      }
      store.list().then(
        (migrations) => {
          const answer = admissionResponse(review, migrations);
          if (answer.response.patch)
            log.info(
              { pod: `${review.request?.namespace}/${review.request?.object?.metadata?.name}` },
              'admission: a StatefulSet pod created again becomes the replacement',
            );
          reply(200, answer);
        },
        (err: Error) => {
          // No answer the API server could apply: it refuses the pod (failurePolicy Fail) and
          // the StatefulSet tries again, rather than a pod starting afresh behind ferry's back.
          log.error({ err: err.message }, 'admission: the store cannot be read');
          reply(500, { message: `ferry cannot read its Migrations: ${err.message}` });
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  return server;
}
