// The fence that keeps a replica that does not lead from writing. Leadership can end while requests
// are in flight (a slow API server, a missed renewal); the successor takes over one lease duration
// after the last renewal it saw, and the old leader must have stopped writing by then. So every write
// the typed clients send checks the fence first, and carries a signal that aborts it the moment the
// fence closes (client-go's renew deadline is what makes that moment come before the lease expires).
import { KubeApiError } from './api-error.js';

/** Asked before each write request; the signal aborts writes in flight when the right to write ends. */
export interface WriteFence {
  mayWrite(): boolean;
  /** Aborted when the right to write ends; undefined while there is none. */
  signal(): AbortSignal | undefined;
}

/** Open while this replica leads: opened when a term starts, closed (synchronously) when it ends. */
export class LeadershipFence implements WriteFence {
  private term: AbortController | undefined;

  open(): void {
    this.term ??= new AbortController();
  }

  /** Closes the fence and aborts every write in flight. */
  close(reason: string): void {
    this.term?.abort(new Error(`write aborted: ${reason}`));
    this.term = undefined;
  }

  mayWrite(): boolean {
    return this.term !== undefined;
  }

  signal(): AbortSignal | undefined {
    return this.term?.signal;
  }
}

/** The error a write gets when the fence is closed. Not transient: this replica is not to write at all. */
export function fencedWriteError(method: string, url: string): KubeApiError {
  const path = url.replace(/^[a-z]+:\/\/[^/]+/i, '').replace(/\?.*$/, '');
  return new KubeApiError('Fenced', undefined, undefined, `${method} ${path} not sent: this replica does not lead`);
}
