// The error taxonomy of Strata. An expected failure is a StrataError with a stable
// code (part of the wire protocol: see proto/common.cddl), a retryable flag and a
// human message. Broken invariants are not StrataErrors: they are assertions.

/** Stable error codes. Their spelling is part of the protocol; never rename one. */
export const ErrorCode = {
  /** The request is malformed or breaks a rule; retrying the same request fails again. */
  INVALID: 'INVALID',
  /** The named object does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** The request conflicts with current state (a name in use, a stale revision). */
  CONFLICT: 'CONFLICT',
  /** This node does not own the vDisk; `hint` names the owner when known. */
  NOT_OWNER: 'NOT_OWNER',
  /** The sender acted on a lease or epoch that has been superseded. */
  FENCED: 'FENCED',
  /** Capacity is exhausted. */
  NO_SPACE: 'NO_SPACE',
  /** Nobody can serve the request right now (no leader, no responder); try again. */
  UNAVAILABLE: 'UNAVAILABLE',
  /** The deadline passed before a reply arrived; the outcome is unknown. */
  TIMEOUT: 'TIMEOUT',
  /** Stored data failed its checksum. */
  CHECKSUM: 'CHECKSUM',
  /** A bounded queue is full; back off and retry. */
  QUEUE_FULL: 'QUEUE_FULL',
  /** An unexpected fault inside the server; its log has the details. */
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const errorCodes: readonly ErrorCode[] = Object.values(ErrorCode);

/** Codes whose requests may succeed if sent again unchanged. */
const retryableCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.NOT_OWNER,
  ErrorCode.UNAVAILABLE,
  ErrorCode.TIMEOUT,
  ErrorCode.QUEUE_FULL,
]);

export function isRetryableCode(code: ErrorCode): boolean {
  return retryableCodes.has(code);
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (errorCodes as readonly string[]).includes(value);
}

export interface StrataErrorOptions {
  /** Where to go instead: the owner's node for NOT_OWNER, the leader for UNAVAILABLE. */
  hint?: string;
  cause?: unknown;
}

/** An expected failure with a stable code; travels over the bus as an error reply. */
export class StrataError extends Error {
  override readonly name = 'StrataError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: StrataErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = isRetryableCode(code);
    this.hint = options.hint;
  }

  /** One line for an operator: `NOT_FOUND: vdisk "x" does not exist`. */
  override toString(): string {
    return `${this.code}: ${this.message}`;
  }
}

export function isStrataError(err: unknown, code?: ErrorCode): err is StrataError {
  return err instanceof StrataError && (code === undefined || err.code === code);
}

/** Throws if `condition` is false: for invariants, never for bad input. */
export function assert(condition: unknown, why: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${why}`);
}
