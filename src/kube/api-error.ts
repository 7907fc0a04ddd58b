// One typed error for failed API calls, so callers branch on `kind` instead of parsing bodies.
import { ApiException } from '@kubernetes/client-node';

export type ApiErrorKind =
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Forbidden'
  | 'Unauthorized'
  | 'Invalid'
  | 'TooManyRequests'
  | 'ServerError'
  | 'Network'
  /** Not sent: this replica does not lead (see write-fence.ts). */
  | 'Fenced'
  | 'Other';

/** A failed Kubernetes API call, classified. `transient` errors are worth retrying with backoff. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly kind: ApiErrorKind,
    readonly code: number | undefined,
    readonly reason: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get transient(): boolean {
    return this.kind === 'Conflict' || this.kind === 'TooManyRequests' || this.kind === 'ServerError' || this.kind === 'Network';
  }
}

interface StatusBody {
  reason?: unknown;
  message?: unknown;
}

function parseStatusBody(body: unknown): StatusBody {
  // client-node 2.x gives the raw response text as `body`, whatever its declared type.
  if (typeof body === 'string') {
    try {
      const parsed: unknown = JSON.parse(body);
      return typeof parsed === 'object' && parsed !== null ? (parsed as StatusBody) : {};
    } catch {
      return {};
    }
  }
  return typeof body === 'object' && body !== null ? (body as StatusBody) : {};
}

function kindOf(code: number, reason: string | undefined): ApiErrorKind {
  if (code === 404) return 'NotFound';
  if (code === 409) return reason === 'AlreadyExists' ? 'AlreadyExists' : 'Conflict';
  if (code === 403) return 'Forbidden';
  if (code === 401) return 'Unauthorized';
  if (code === 422 || code === 400) return 'Invalid';
  if (code === 429) return 'TooManyRequests';
  if (code >= 500) return 'ServerError';
  return 'Other';
}

/**
 * Classifies anything a client-node call threw, describing what was being done (`action`). The message
 * holds the status code, reason and the server's short message, never the whole body or headers.
 */
export function toKubeApiError(err: unknown, action: string): KubeApiError {
  if (err instanceof KubeApiError) return err;
  if (err instanceof ApiException) {
    const code = err.code;
    const status = parseStatusBody(err.body);
    const reason = typeof status.reason === 'string' ? status.reason : undefined;
    const serverMessage = typeof status.message === 'string' ? status.message : '';
    const kind = kindOf(code, reason);
    const text = `${action}: HTTP ${code}${reason === undefined ? '' : ` ${reason}`}${serverMessage === '' ? '' : `: ${serverMessage}`}`;
    // The ApiException's own message embeds the whole body and headers; keep it out of the cause chain.
    return new KubeApiError(kind, code, reason, text);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new KubeApiError('Network', undefined, undefined, `${action}: ${message}`, { cause: err });
}

/** True when the error says the object (or its API) does not exist. */
export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.kind === 'NotFound';
}
