// A route is how one kind of Migration goes through the phases: which agent steps each phase runs,
// what the controller itself does in a phase (the pod path creates and deletes pods), what follows
// what, the jobs it sends and what their results add to status. decide() is the same for every
// route; routes.ts picks one per Migration.
import type { Job } from '../../api/v1alpha1/jobs.ts';
import type { MigrationState, Phase, StoredMigration } from '../../api/v1alpha1/migration.ts';
import type { Action, Decision, Facts, Side, StepName } from './facts.ts';

export interface StepSpec {
  step: StepName;
  side: Side;
  /** Steps of the same phase that must complete (or be skipped) before this one is enqueued. */
  after?: readonly StepName[];
  /** Waits until the controller's own work in the phase (the route's gate) is done. */
  afterGate?: boolean;
  /** Waits until what the controller observed allows it (a pod it needs exists). */
  ready?: (facts: Facts, m: StoredMigration) => boolean;
}

/** A step of a route's table: `step(name, side, [steps it waits for])`. */
export const stepSpec = <S extends StepName>(step: S, side: Side, after?: S[]): StepSpec => ({
  step,
  side,
  ...(after ? { after } : {}),
});

/** What the controller itself does in a phase: its actions, what failed, and whether it is done. */
export interface Gate {
  actions: Action[];
  failures: string[];
  done: boolean;
}

export interface Route {
  /** The steps a phase runs, in order. */
  steps(m: StoredMigration, phase: Phase): readonly StepSpec[];
  /** The phase after each, when all went well. */
  next: Partial<Record<Phase, Phase>>;
  /** The step that moves bytes in a phase, whose progress status shows. */
  sending: Partial<Record<Phase, StepName>>;
  /** The job a step sends. */
  build(step: StepName, m: StoredMigration, facts: Facts, targetNode: string): Job;
  /** The controller's own work in a phase, if any. */
  gate?(m: StoredMigration, facts: Facts, state: MigrationState): Gate | undefined;
  /** Why this controller cannot run the Migration at all, refused while Pending. */
  refuse?(facts: Facts): string | undefined;
  /** Preflight passed: the route's choice (a memory strategy) or refusal. */
  afterPreflight(m: StoredMigration, facts: Facts, state: MigrationState): Decision;
  /** What a finished phase's results add to migrationState. */
  record(phase: Phase, state: MigrationState, facts: Facts): MigrationState;
}
