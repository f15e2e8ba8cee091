// Which route a Migration takes: a pod (spec.source.pod) moves through the pod route (its node's runtime)
// and a replacement pod; anything else is a container or a process tree the agents move themselves.
import type { StoredMigration } from '../../api/v1alpha1/migration.ts';
import { containerRoute } from './container-route.ts';
import { podRoute } from './pod-route.ts';
import type { Route } from './route.ts';

export const routeOf = (m: StoredMigration): Route => (m.spec.source.pod ? podRoute : containerRoute);
